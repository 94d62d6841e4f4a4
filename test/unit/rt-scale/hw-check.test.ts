// npm run hw-check: on a machine without a Raspberry Pi it says so and exits
// non-zero; --sim runs the very same check against the pigpio stand-in.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { piModel } from '../../../nodes/rt-scale/hw-check';
import { repoRoot, tempDir } from '../../helpers/util';

const script = join(repoRoot, 'dist', 'nodes', 'rt-scale', 'hw-check.js');

describe('hw-check', function () {
  this.timeout(60_000);

  it('is npm run hw-check', () => {
    const pkg = require(join(repoRoot, 'package.json')) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts['hw-check'], 'node dist/nodes/rt-scale/hw-check.js');
  });

  it('without a Raspberry Pi: says so and exits non-zero', function () {
    if (piModel()) this.skip(); // on a Pi the real check runs
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stdout, /not a Raspberry Pi/);
  });

  it('--sim: data rate, bad frames by cause, latency p50/p99/max, longest clock-high, and the motor stops', () => {
    const tmp = tempDir('rtedge-hwcheck-');
    try {
      const env = { ...process.env, RTEDGE_PIGPIO_STANDIN: JSON.stringify({ lockDir: tmp.dir, chips: [{ dout: 5, sck: 6, motor: 18 }] }) };
      const r = spawnSync(process.execPath, [script, '--sim', '--seconds', '2', '--motor-test'], { encoding: 'utf8', env });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /good samples, [\d.]+ samples\/s/);
      assert.match(r.stdout, /bad frames by cause: overrun \d+, .*frame_long \d+, late \d+, power_down \d+/);
      assert.match(r.stdout, /latency .* p50 \d+, p99 \d+, max \d+/);
      assert.match(r.stdout, /longest clock-high time: \d+ us/);
      assert.match(r.stdout, /motor stopped: yes/);
      assert.match(r.stdout, /result: PASS/);
    } finally {
      tmp.cleanup();
    }
  });

  it('--backend gpiocdev --sim: the same figures through the gpiocdev backend, the motor on the kernel PWM and stopped', () => {
    const r = spawnSync(process.execPath, [script, '--sim', '--backend', 'gpiocdev', '--seconds', '2', '--motor-test'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /backend gpiocdev/);
    assert.match(r.stdout, /GPIO chip \/dev\/gpiochip0/);
    assert.match(r.stdout, /motor: kernel PWM .*pwmchip0\/pwm0/);
    assert.match(r.stdout, /good samples, [\d.]+ samples\/s/);
    assert.match(r.stdout, /bad frames by cause: overrun \d+, .*frame_long \d+, late \d+, power_down \d+/);
    assert.match(r.stdout, /latency .* p50 \d+, p99 \d+, max \d+/);
    assert.match(r.stdout, /motor stopped: yes/);
    assert.match(r.stdout, /result: PASS/);
  });
});
