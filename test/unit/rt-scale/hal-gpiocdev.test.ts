// The gpiocdev backend's own code (nodes/rt-scale/hal-gpiocdev.ts) on a
// stand-in of its addon (test/helpers/gpiocdev-standin.ts, the simulated chip
// behind the addon's API) and a temp-dir tree standing in for /sys/class/pwm:
// polled data-ready and guarded frames, the kernel PWM motor (order of writes,
// off on close and on failure), the PWM channel of each GPIO on Pi 1-4 and
// Pi 5, refusals (a PWM channel or a line of another scale, a busy line, a
// missing chip), and the errors' words.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { findHeaderChip, GPIOCDEV_CODES, lineError, loadAddon } from '../../../nodes/rt-scale/gpiocdev-addon';
import { GPIOCDEV_PIN_CODES, openGpiocdev, resolvePwm } from '../../../nodes/rt-scale/hal-gpiocdev';
import { guardExit, stopAllNow } from '../../../nodes/rt-scale/exit-guard';
import { findPwmChip, KernelPwm, PWM_CODES, pwmChannelFor, pwmOff, pwmOffSync } from '../../../nodes/rt-scale/kernel-pwm';
import { readScale, SCALE_PROBLEMS } from '../../../nodes/rt-scale/scale-config';
import { ScaleEngine } from '../../../nodes/rt-scale/scale-engine';
import { SCALE_METRICS, type HalConfig } from '../../../nodes/rt-scale/scale-protocol';
import type { SampleOut } from '../../../nodes/rt-scale/sampler-core';
import { CodedError, isCodedError } from '../../../nodes/shared/coded';
import { SharedMetrics } from '../../../nodes/shared/shared-metrics';
import { en } from '../../helpers/catalog';
import { createGpiocdev, type GpiocdevStandinConfig } from '../../helpers/gpiocdev-standin';
import { makePwmTree, pwmState } from '../../helpers/pwm-tree';
import { tempDir, waitFor } from '../../helpers/util';

const tmp = tempDir('rtedge-gpiocdev-unit-');
let n = 0;
/** A fresh sysfs tree: a Pi 4's PWM block (2 channels) as pwmchip0, and a Pi 5's RP1 PWM0 (4 channels) as pwmchip2. */
function tree(): string {
  const root = join(tmp.dir, `t${n++}`, 'class', 'pwm');
  makePwmTree(root, [
    { n: 0, device: 'fe20c000.pwm', npwm: 2 },
    { n: 2, device: '1f00098000.pwm', npwm: 4 },
  ]);
  return root;
}

const cfgOf = (o: Partial<HalConfig> = {}): HalConfig => ({ backend: 'gpiocdev', doutPin: 5, sckPin: 6, motorPin: 18, motorHz: 10_000, sps: 80, gpioChip: '/dev/gpiochip0', pwmChip: '0', ...o });

const addons: Array<{ close(): void }> = [];
function standin(cfg: GpiocdevStandinConfig = {}): ReturnType<typeof createGpiocdev> {
  const a = createGpiocdev(cfg);
  addons.push(a);
  return a;
}
const opened: Array<{ close(): void }> = [];
afterEach(() => {
  for (const h of opened.splice(0)) h.close();
  for (const a of addons.splice(0)) a.close();
});
after(() => tmp.cleanup());

function scale(addon: ReturnType<typeof createGpiocdev>, cfg: HalConfig, root: string, name = 'A') {
  const failures: unknown[] = [];
  const hal = openGpiocdev(cfg, name, (e) => failures.push(e), { addon, pwmRoot: root, board: 'pi1-4' });
  const m = SharedMetrics.create(SCALE_METRICS);
  const samples: SampleOut[] = [];
  const engine = new ScaleEngine(hal, { gain: 'A128', cal: { zero: 84_000, cpgMilli: 420_000 }, sampler: {}, calSamples: 4, periodUs: 12_500 }, null, m, () => undefined);
  engine.addListener((s) => samples.push(s));
  engine.start();
  opened.push(engine);
  return { hal, engine, m, samples, failures };
}

describe('gpiocdev backend on a stand-in of its addon (in process)', function () {
  this.timeout(20_000);

  it('samples at 80 SPS by polling DOUT through the addon: lines requested as the HX711 needs, guarded frames, heartbeat toggling', async () => {
    const rec = join(tmp.dir, 'lines.jsonl');
    const root = tree();
    const addon = standin({ record: rec, chips: [{ dout: 5, sck: 6, motor: 18 }] });
    const s = scale(addon, cfgOf({ heartbeatPin: 16, doutBias: 'pull-up' }), root);
    await waitFor(() => s.samples.length >= 40, 10_000, '40 samples');
    const dseq = s.samples.slice(1).map((x, i) => x.seq - s.samples[i].seq);
    assert.ok(dseq.every((d) => d === 1), 'consecutive samples');
    assert.ok(s.samples.every((x) => Math.abs(x.cg) < 500), `weights near zero: ${JSON.stringify(s.samples.filter((x) => Math.abs(x.cg) >= 500).slice(0, 3))} (max high ${s.engine.maxHighUs} us)`);
    // timed from before each rising edge to after its falling edge (a preempted pulse on this busy machine is discarded, not wrong)
    assert.ok(s.engine.maxHighUs > 0 && s.engine.maxHighUs < 1_000_000, `clock-high ${s.engine.maxHighUs} us`);
    const reqs = readFileSync(rec, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: string; offset?: number; output?: boolean; bias?: string }).filter((r) => r.t === 'request');
    assert.deepEqual(
      reqs.map((r) => [r.offset, r.output, r.bias]),
      [
        [5, false, 'pull-up'],
        [6, true, 'as-is'],
        [16, true, 'as-is'],
      ],
    );
    const beat = addon.board.levels.get(16);
    await waitFor(() => addon.board.levels.get(16) !== beat, 1000, 'the heartbeat toggling');
    assert.equal(s.failures.length, 0);
    s.engine.close();
    assert.equal(addon.openHandles(), 0, 'every line released on close');
    assert.equal(addon.board.levels.get(16), 0, 'heartbeat low after close');
  });

  it('drives the motor through the kernel PWM (duty <= period at every write), off on close', () => {
    const root = tree();
    const addon = standin();
    const s = scale(addon, cfgOf({ motorHz: 20_000 }), root);
    assert.deepEqual(pwmState(root, 0, 0), { enable: 0, period: 50_000, duty: 0 }, 'opened: period set, motor off');
    s.hal.setMotor(250);
    assert.deepEqual(pwmState(root, 0, 0), { enable: 1, period: 50_000, duty: 12_500 });
    assert.equal((s.hal as unknown as { motorDuty(): number }).motorDuty(), 250, 'read back from sysfs');
    s.hal.setMotor(0);
    assert.deepEqual(pwmState(root, 0, 0), { enable: 0, period: 50_000, duty: 0 });
    s.hal.setMotor(1000);
    s.engine.close();
    assert.deepEqual(pwmState(root, 0, 0), { enable: 0, period: 50_000, duty: 0 }, 'off after close');
    // a channel left with a long duty by someone else: duty goes to 0 before the shorter period is written
    writeFileSync(join(root, 'pwmchip0', 'pwm1', 'duty_cycle'), '900000');
    writeFileSync(join(root, 'pwmchip0', 'pwm1', 'period'), '1000000');
    const p = new KernelPwm({ root, chip: 'pwmchip0', channel: 1 }, 10_000);
    assert.deepEqual(pwmState(root, 0, 1), { enable: 0, period: 100_000, duty: 0 });
    p.off();
  });

  it('a DOUT read that fails stops that scale (motor off, lines released at close); another scale on the same addon goes on', async () => {
    const root = tree();
    const addon = standin({ chips: [{ dout: 5, sck: 6, failAfterReads: 3000 }, { dout: 22, sck: 23 }] });
    const a = scale(addon, cfgOf(), root, 'A');
    const b = scale(addon, cfgOf({ doutPin: 22, sckPin: 23, motorPin: 13 }), root, 'B');
    a.hal.setMotor(500);
    await waitFor(() => a.failures.length > 0, 15_000, 'scale A failing');
    assert.ok(isCodedError(a.failures[0]) && a.failures[0].code === 'hal-failed');
    assert.equal(pwmState(root, 0, 0).enable, 0, 'its motor is off');
    const nb = b.samples.length;
    await waitFor(() => b.samples.length > nb + 20, 5000, 'scale B sampling on');
    assert.equal(addon.openHandles(), 4);
    a.engine.close();
    assert.equal(addon.openHandles(), 2, 'scale A\'s lines released at close');
    assert.equal(pwmState(root, 0, 0).enable, 0);
  });

  it('refuses a PWM channel or a line that another scale holds, a busy or missing line, and says which', () => {
    const root = tree();
    const addon = standin({ chips: [{ dout: 5, sck: 6 }, { dout: 24, sck: 25 }] });
    const a = scale(addon, cfgOf(), root, 'scale A');
    const err = (f: () => unknown): CodedError => {
      try {
        f();
      } catch (e) {
        assert.ok(isCodedError(e), String(e));
        return e;
      }
      assert.fail('no error');
    };
    // GPIO 12 is PWM channel 0 on a Pi 1-4, which scale A's GPIO 18 drives
    const c = err(() => openGpiocdev(cfgOf({ doutPin: 24, sckPin: 25, motorPin: 12 }), 'scale C', () => undefined, { addon, pwmRoot: root, board: 'pi1-4' }));
    assert.equal(c.code, 'pwm-channel-taken');
    assert.equal(en('rt-scale', c), 'motor GPIO 12 is on pwmchip0 channel 0, which scale "scale A" already drives (GPIO 18): two scales on one PWM channel would drive each other\'s motor; move one motor to another channel');
    assert.equal(addon.openHandles(), 2, 'the refused scale requested no line');
    const pin = err(() => openGpiocdev(cfgOf({ sckPin: 25, motorPin: 13 }), 'scale D', () => undefined, { addon, pwmRoot: root, board: 'pi1-4' }));
    assert.equal(pin.code, 'pin-busy');
    // a line held elsewhere (the kernel says EBUSY): worded, and nothing is left claimed
    const other = addon.requestLine('/dev/gpiochip0', 25, { output: true });
    const busy = err(() => openGpiocdev(cfgOf({ doutPin: 24, sckPin: 25, motorPin: 13 }), 'scale E', () => undefined, { addon, pwmRoot: root, board: 'pi1-4' }));
    assert.equal(busy.code, 'gpiocdev-ebusy');
    assert.match(en('rt-scale', busy), /could not open \/dev\/gpiochip0 line 25 \(.*EBUSY.*\): the line is held by another program/);
    assert.equal(pwmState(root, 0, 1).enable, 0);
    addon.release(other);
    const ok = scale(addon, cfgOf({ doutPin: 24, sckPin: 25, motorPin: 13 }), root, 'scale E');
    ok.engine.close();
    const missing = err(() => openGpiocdev(cfgOf({ gpioChip: '/dev/gpiochip7', motorPin: 19, doutPin: 24, sckPin: 25 }), 'scale F', () => undefined, { addon, pwmRoot: root, board: 'pi1-4' }));
    assert.equal(missing.code, 'gpiocdev-enoent');
    assert.match(en('rt-scale', missing), /^could not open \/dev\/gpiochip7 line 24 \(open \/dev\/gpiochip7: No such file or directory \(ENOENT\)\): no such GPIO chip/);
    a.engine.close();
  });

  it('the motor GPIO\'s PWM channel on Pi 1-4 and Pi 5; the PWM chip found by its device; a pin without PWM refused', () => {
    assert.deepEqual([12, 13, 18, 19].map((g) => pwmChannelFor(g, 'pi1-4')), [0, 1, 0, 1]);
    assert.deepEqual([12, 13, 18, 19].map((g) => pwmChannelFor(g, 'pi5')), [0, 1, 2, 3]);
    assert.equal(pwmChannelFor(17, 'pi5'), undefined);
    const root = join(tmp.dir, 'pi5', 'class', 'pwm');
    makePwmTree(root, [
      { n: 0, device: '107d517a80.pwm', npwm: 4 }, // another PWM block of the Pi 5 (on the SoC): not the header's
      { n: 2, device: '1f00098000.pwm', npwm: 4 },
    ]);
    assert.deepEqual(findPwmChip(root), { chip: 'pwmchip2', board: 'pi5' });
    assert.deepEqual(resolvePwm(cfgOf({ pwmChip: '' }), root), { root, chip: 'pwmchip2', channel: 2, board: 'pi5' });
    assert.equal(resolvePwm(cfgOf({ pwmChip: '', pwmChannel: 3 }), root).channel, 3, 'a configured channel wins');
    const noPwm = (): unknown => resolvePwm(cfgOf({ pwmChip: '', motorPin: 17 }), root);
    assert.throws(noPwm, (e: unknown) => isCodedError(e) && e.code === 'pwm-no-channel' && /GPIO 17 has no hardware PWM/.test(en('rt-scale', e)));
    assert.throws(
      () => resolvePwm(cfgOf({ pwmChip: '' }), join(tmp.dir, 'nowhere')),
      (e: unknown) => isCodedError(e) && e.code === 'pwm-no-chip' && /dtoverlay=pwm-2chan/.test(en('rt-scale', e)),
    );
  });

  it('the flow engine\'s exit path writes a kernel-PWM motor off itself, even when the HAL thread does not answer; a dead HAL thread\'s motor too (asynchronously)', async () => {
    const root = tree();
    const p = new KernelPwm({ root, chip: 'pwmchip2', channel: 2 }, 10_000);
    p.set(600);
    assert.equal(pwmState(root, 2, 2).enable, 1);
    // a HAL thread that cannot be asked (dead): allOff posts nothing
    const unguard = guardExit({ allOff: () => false, kernelPwm: () => p.dir });
    try {
      assert.equal(stopAllNow(10), 0, 'no HAL acknowledgement');
      assert.deepEqual([pwmState(root, 2, 2).enable, pwmState(root, 2, 2).duty], [0, 0], 'off from this thread');
    } finally {
      unguard();
    }
    p.set(300);
    await pwmOff(p.dir);
    assert.deepEqual([pwmState(root, 2, 2).enable, pwmState(root, 2, 2).duty], [0, 0]);
    await pwmOff(join(root, 'nowhere')); // never rejects
  });

  it('exports a channel that is not exported yet; a channel that never appears is a plain error', () => {
    const root = join(tmp.dir, 'unexported', 'class', 'pwm');
    makePwmTree(root, [{ n: 0, device: 'fe20c000.pwm', npwm: 2, exported: [] }]);
    assert.throws(
      () => new KernelPwm({ root, chip: 'pwmchip0', channel: 1 }, 10_000, 100),
      (e: unknown) => isCodedError(e) && e.code === 'pwm-export' && /did not appear within 100 ms/.test(en('rt-scale', e)),
    );
    assert.equal(readFileSync(join(root, 'pwmchip0', 'export'), 'utf8'), '1', 'the channel was exported');
    // exit path: never throws, writes what it can
    pwmOffSync(join(root, 'pwmchip0', 'pwm9'));
    // an export that cannot be written (here: a directory, EISDIR; on a Pi: EACCES without the gpio group)
    rmSync(join(root, 'pwmchip0', 'export'));
    mkdirSync(join(root, 'pwmchip0', 'export'));
    assert.throws(
      () => new KernelPwm({ root, chip: 'pwmchip0', channel: 0 }, 10_000, 100),
      (e: unknown) => isCodedError(e) && e.code === 'pwm-access' && /cannot write the kernel PWM at .*export \(EISDIR.*needs the gpio group/.test(en('rt-scale', e)),
    );
  });

  it('the addon not built: gpiocdev-missing names npm run build:gpiocdev and the simulated backend', () => {
    const e = (() => {
      try {
        loadAddon(join(tmp.dir, 'no-such-addon.node'));
      } catch (x) {
        return x;
      }
      return null;
    })();
    assert.ok(isCodedError(e) && e.code === 'gpiocdev-missing');
    assert.match(en('rt-scale', e), /addon is not built \(Cannot find module .*no-such-addon\.node.*\)\. On the Raspberry Pi, run npm run build:gpiocdev once .* or pick the "simulated" backend/);
  });

  it('errors by errno are worded with what to do; the header chip is found by its label', () => {
    const t = (code: string): string => en('rt-scale', lineError(Object.assign(new Error(`open /dev/gpiochip0: x (${code})`), { code }), '/dev/gpiochip0 line 5'));
    assert.match(t('EACCES'), /needs the gpio group \(sudo usermod -aG gpio <user>/);
    assert.match(t('EPERM'), /needs the gpio group/);
    assert.match(t('EBUSY'), /held by another program or driver \(gpioinfo/);
    assert.match(t('ENOENT'), /no such GPIO chip or line \(gpiodetect/);
    assert.match(t('EIO'), /^could not open \/dev\/gpiochip0 line 5 \(open \/dev\/gpiochip0: x \(EIO\)\); or pick the "simulated" backend$/);
    for (const code of [...GPIOCDEV_CODES, ...PWM_CODES]) assert.match(String(en('rt-scale', { code, params: { path: 'p', error: 'e', what: 'w', dir: 'd', pin: 1, ms: 1 } })), /pick the "simulated" backend/, code);
    for (const code of GPIOCDEV_PIN_CODES) assert.ok(en('rt-scale', { code, params: { pin: 12, chip: 'pwmchip0', channel: 0, other: 'A', otherPin: 18 } }));
    // the stand-in's chip path /dev/x/gpiochip3 is labelled pinctrl-*: found; none there: gpiocdev-no-chip
    const dev = join(tmp.dir, 'dev');
    mkdirSync(dev, { recursive: true });
    writeFileSync(join(dev, 'gpiochip3'), '');
    writeFileSync(join(dev, 'gpiochip1'), '');
    const addon = standin({ chipPaths: [join(dev, 'gpiochip3')] });
    assert.equal(findHeaderChip(addon, dev), join(dev, 'gpiochip3'));
    assert.throws(() => findHeaderChip(standin({ chipPaths: [] }), dev), (e: unknown) => isCodedError(e) && e.code === 'gpiocdev-no-chip' && /gpiodetect/.test(en('rt-scale', e)));
  });

  it('config: backend gpiocdev with chip, bias, PWM chip and channel; bad values are problems', () => {
    const ok = readScale({ id: 's', type: 'rt-scale', version: 1, backend: 'gpiocdev', doutPin: 5, sckPin: 6, motorPin: 18, rate: 80, zero: 0, countsPerGram: 420, stableG: 0.05, capacityG: 5000, gpioChip: '/dev/gpiochip4', doutBias: 'pull-down', pwmChip: '2', pwmChannel: '' });
    assert.deepEqual(ok.problems, []);
    assert.deepEqual([ok.backend, ok.gpioChip, ok.doutBias, ok.pwmChip, ok.pwmChannel], ['gpiocdev', '/dev/gpiochip4', 'pull-down', '2', -1]);
    const old = readScale({ id: 's', type: 'rt-scale', version: 1, backend: 'pigpio', doutPin: 5, sckPin: 6, motorPin: 18, rate: 80, zero: 0, countsPerGram: 420, stableG: 0.05, capacityG: 5000 });
    assert.deepEqual([old.problems, old.gpioChip, old.doutBias, old.pwmChip, old.pwmChannel], [[], '', 'disabled', '', -1], 'a config from before gpiocdev needs no migration');
    const bad = readScale({ id: 's', type: 'rt-scale', version: 1, backend: 'gpiocdev', doutPin: 5, sckPin: 6, motorPin: 18, rate: 80, zero: 0, countsPerGram: 420, stableG: 0.05, capacityG: 5000, gpioChip: 'gpiochip0; rm', pwmChannel: '4', pwmChip: 'x' });
    assert.deepEqual(bad.problems.map((p) => p.code), ['bad-gpio-chip', 'out-of-range-whole', 'out-of-range-whole']);
    assert.ok(SCALE_PROBLEMS.includes('bad-gpio-chip'));
    assert.match(en('rt-scale', bad.problems[0]), /a path such as \/dev\/gpiochip0/);
  });
});
