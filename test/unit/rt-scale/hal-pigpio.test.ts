// The pigpio backend's own code (nodes/rt-scale/hal-pigpio.ts) on the pigpio
// stand-in (test/helpers/pigpio-standin*.ts), in this process: data-ready by
// polling with no pigpio callback, interfaces off, PWM and pin claims, the
// motor, one scale's failure; and the stand-in's own pitfalls (callbacks on
// the main loop, refusal to load twice, sysfs interrupts on kernel >= 6.6).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { openPigpioWith, type PigpioModule, PIGPIO_INTERFACES_OFF } from '../../../nodes/rt-scale/hal-pigpio';
import { ScaleEngine } from '../../../nodes/rt-scale/scale-engine';
import { SCALE_METRICS, type HalConfig } from '../../../nodes/rt-scale/scale-protocol';
import type { SampleOut } from '../../../nodes/rt-scale/sampler-core';
import { CodedError } from '../../../nodes/shared/coded';
import { SharedMetrics } from '../../../nodes/shared/shared-metrics';
import { createPigpio, STANDIN_ENV, type StandinConfig } from '../../helpers/pigpio-standin-core';
import { tempDir, waitFor } from '../../helpers/util';

const cfgOf = (o: Partial<HalConfig> = {}): HalConfig => ({ backend: 'pigpio', doutPin: 5, sckPin: 6, motorPin: 18, motorHz: 10_000, sps: 80, ...o });

function scale(pg: PigpioModule, cfg: HalConfig, name = 'A') {
  const failures: unknown[] = [];
  const hal = openPigpioWith(pg, cfg, name, (e) => failures.push(e));
  const m = SharedMetrics.create(SCALE_METRICS);
  const samples: SampleOut[] = [];
  const engine = new ScaleEngine(hal, { gain: 'A128', cal: { zero: 84_000, cpgMilli: 420_000 }, sampler: {}, calSamples: 4, periodUs: 12_500 }, null, m, () => undefined);
  engine.addListener((s) => samples.push(s));
  engine.start();
  return { hal, engine, m, samples, failures };
}

/** Every stand-in created by a test: terminated after it (its chips' timers stop). */
const boards: Array<{ terminate(): void }> = [];
function standin(cfg: StandinConfig): ReturnType<typeof createPigpio> {
  const pg = createPigpio(cfg);
  boards.push(pg);
  return pg;
}
afterEach(() => {
  for (const b of boards.splice(0)) b.terminate();
});

describe('pigpio backend on the pigpio stand-in (in process)', function () {
  this.timeout(20_000);

  it('samples at 80 SPS by polling DOUT: no interrupt or alert callback, socket and FIFO interfaces off before initialise', async () => {
    const pg = standin({ chips: [{ dout: 5, sck: 6, motor: 18 }] });
    const s = scale(pg, cfgOf());
    try {
      assert.equal(pg.board.ifFlags, PIGPIO_INTERFACES_OFF, 'configureInterfaces(FIFO | SOCK | ALERT off) before gpioInitialise');
      assert.equal(pg.board.ifFlags & 3, 3);
      await waitFor(() => s.samples.length >= 40, 10_000, '40 samples');
      assert.equal(pg.board.isr.size + pg.board.alerts.size, 0, 'no pigpio callback registered');
      assert.ok(s.samples.every((x) => Math.abs(x.cg) < 500), `weights near zero: ${s.samples.slice(-3).map((x) => x.cg)}`);
      const dt = s.samples.slice(1).map((x, i) => x.seq - s.samples[i].seq);
      assert.ok(dt.every((d) => d === 1), 'consecutive samples');
      assert.equal(s.failures.length, 0);
    } finally {
      s.engine.close();
    }
  });

  it('reads right while pigpio\'s uint32 tick crosses 2^31 and 2^32', async () => {
    for (const start of [2 ** 31 - 150_000, 2 ** 32 - 150_000]) {
      const pg = standin({ chips: [{ dout: 5, sck: 6 }], tickStart: start });
      const s = scale(pg, cfgOf());
      try {
        await waitFor(() => ((pg.getTick() - start) >>> 0) > 200_000 && s.samples.length >= 30, 10_000, `the tick crossed ${start + 150_000}`);
        // a wrapped difference would be ~2^32 us; a preempted pulse on a busy machine is milliseconds at most
        assert.ok(s.engine.maxHighUs < 1_000_000, `clock-high is a real time, not a wrapped difference: ${s.engine.maxHighUs}`);
        // pigpio's own tickDiff is wrong across 2^31: the backend does not use it
        assert.notEqual(pg.tickDiff(0x7fffffff, 0x80000001), 2);
      } finally {
        s.engine.close();
      }
    }
  });

  it('drives the motor with hardware PWM on 12/13/18/19, software PWM elsewhere; off on close', () => {
    const pg = standin({ chips: [{ dout: 5, sck: 6, motor: 18 }, { dout: 22, sck: 23, motor: 17 }] });
    const a = scale(pg, cfgOf());
    const b = scale(pg, cfgOf({ doutPin: 22, sckPin: 23, motorPin: 17 }), 'B');
    a.hal.setMotor(500);
    b.hal.setMotor(1000);
    assert.deepEqual(pg.board.pwm.get(18), { hw: true, freq: 10_000, duty: 500_000 });
    assert.equal(pg.board.pwm.get(17)?.duty, 255);
    a.engine.close();
    b.engine.close();
    assert.equal(pg.board.pwm.get(18)?.duty, 0);
    assert.equal(pg.board.pwm.get(17)?.duty, 0);
  });

  it('toggles the optional heartbeat pin on every data-ready while sampling, and leaves it low when closed', async () => {
    const pg = standin({ chips: [{ dout: 5, sck: 6, motor: 18 }] });
    const s = scale(pg, cfgOf({ heartbeatPin: 16 }));
    const seen = new Set<number>();
    const levels: number[] = [];
    const spy = pg.board.gpioWrite.bind(pg.board);
    pg.board.gpioWrite = (gpio: number, level: number) => {
      if (gpio === 16) levels.push(level);
      spy(gpio, level);
    };
    try {
      await waitFor(() => s.samples.length >= 20, 10_000, '20 samples');
      for (const l of levels) seen.add(l);
      assert.deepEqual([...seen].sort(), [0, 1], 'the heartbeat toggles');
      assert.ok(levels.length >= 20, `${levels.length} heartbeat edges`);
    } finally {
      s.engine.close();
    }
    assert.equal(pg.board.levels.get(16), 0, 'low after close: the monostable runs out and disables the driver');
  });

  it('refuses two scales on one PWM channel (12/18, 13/19) and two scales on one pin, with the other scale named', () => {
    const pg = standin({ chips: [{ dout: 5, sck: 6 }, { dout: 22, sck: 23 }, { dout: 24, sck: 25 }] });
    const a = scale(pg, cfgOf(), 'first');
    try {
      assert.throws(
        () => openPigpioWith(pg, cfgOf({ doutPin: 22, sckPin: 23, motorPin: 12 }), 'second', () => undefined),
        (e: CodedError) => e.code === 'pwm-channel-busy' && e.params.other === 'first' && e.params.channel === 0 && e.params.otherPin === 18,
      );
      assert.throws(() => openPigpioWith(pg, cfgOf({ doutPin: 22, sckPin: 6, motorPin: 13 }), 'third', () => undefined), (e: CodedError) => e.code === 'pin-busy' && e.params.pin === 6);
      const b = openPigpioWith(pg, cfgOf({ doutPin: 22, sckPin: 23, motorPin: 13 }), 'fourth', () => undefined);
      b.close();
    } finally {
      a.engine.close();
    }
    // released on close: channel 0 is free again
    openPigpioWith(pg, cfgOf({ doutPin: 24, sckPin: 25, motorPin: 12 }), 'fifth', () => undefined).close();
  });

  it('a pin that fails stops that scale (motor off, hal-failed), not the thread nor the other scale', async () => {
    const pg = standin({ chips: [{ dout: 5, sck: 6, motor: 18 }, { dout: 22, sck: 23, motor: 13, failAfterReads: 300 }] });
    const a = scale(pg, cfgOf());
    const b = scale(pg, cfgOf({ doutPin: 22, sckPin: 23, motorPin: 13 }), 'B');
    try {
      b.hal.setMotor(400);
      await waitFor(() => b.failures.length === 1, 10_000, 'scale B fails');
      assert.equal((b.failures[0] as CodedError).code, 'hal-failed');
      assert.match(String((b.failures[0] as CodedError).params.error), /pigpio error -3 in gpioRead/);
      assert.equal(pg.board.pwm.get(13)?.duty, 0, 'its motor is off');
      const n = a.samples.length;
      await waitFor(() => a.samples.length >= n + 10, 5000, 'scale A goes on');
    } finally {
      a.engine.close();
      b.engine.close();
    }
  });
});

describe('the pigpio stand-in reproduces the addon\'s pitfalls', function () {
  this.timeout(20_000);

  it('callbacks are delivered on the main loop: they wait while it is blocked; from a worker they are refused', async () => {
    const pg = standin({ chips: [{ dout: 5, sck: 6 }] });
    const dout = new pg.Gpio(5, { mode: pg.Gpio.INPUT });
    const got: number[] = [];
    (dout as unknown as NodeJS.EventEmitter).on('interrupt', (level: number) => got.push(level));
    dout.enableInterrupt(pg.Gpio.FALLING_EDGE);
    const end = Date.now() + 100;
    while (Date.now() < end) pg.board.gpioRead(5); // the main loop blocked; the chip converts (read through DOUT)
    assert.equal(got.length, 0, 'nothing delivered while the main loop is blocked');
    await waitFor(() => got.length > 0, 2000, 'interrupts after the loop runs');
    dout.disableInterrupt();
    const code = `
      const { createPigpio } = require(${JSON.stringify(join(__dirname, '..', '..', 'helpers', 'pigpio-standin-core.js'))});
      const { parentPort } = require('node:worker_threads');
      const pg = createPigpio({});
      try { new pg.Gpio(5, { mode: 0, edge: 1 }); parentPort.postMessage('registered'); }
      catch (e) { parentPort.postMessage(e.message); }
      pg.terminate();`;
    const msg = await new Promise<string>((resolve, reject) => {
      const w = new Worker(code, { eval: true });
      w.once('message', (m: string) => {
        resolve(m);
        void w.terminate();
      });
      w.once('error', reject);
    });
    assert.match(msg, /uv_default_loop\(\), the main thread's event loop/);
  });

  it('sysfs interrupts fail with -123 on kernel 6.6', () => {
    const pg = standin({ kernel: '6.6.51' });
    assert.throws(() => new pg.Gpio(5, { mode: pg.Gpio.INPUT, edge: pg.Gpio.FALLING_EDGE }), /pigpio error -123 in gpioSetISRFunc/);
  });

  it('loads once per process: a second load gets pigpio.js\'s empty binding ("gpioInitialise is not a function"), which the backend reports as pigpio-init', () => {
    const tmp = tempDir('rtedge-standin-');
    const recordFile = join(tmp.dir, 'record.jsonl');
    const prev = process.env[STANDIN_ENV];
    process.env[STANDIN_ENV] = JSON.stringify({ lockDir: tmp.dir, record: recordFile } satisfies StandinConfig);
    const path = require.resolve('../../helpers/pigpio-standin');
    try {
      delete require.cache[path];
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const first = require(path) as PigpioModule;
      delete require.cache[path];
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const second = require(path) as PigpioModule;
      assert.notEqual(first, second);
      assert.throws(() => second.initialize(), /pigpio\.gpioInitialise is not a function/);
      assert.throws(
        () => openPigpioWith(second, cfgOf(), 'X', () => undefined),
        // configureInterfaces comes first, and fails the same way
        (e: CodedError) => e.code === 'pigpio-init' && /pigpio\.gpio\w+ is not a function/.test(String(e.params.error)),
      );
      const events = readFileSync(recordFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { t: string }).t);
      assert.deepEqual(events, ['load', 'refused']);
    } finally {
      delete require.cache[path];
      if (prev === undefined) delete process.env[STANDIN_ENV];
      else process.env[STANDIN_ENV] = prev;
      tmp.cleanup();
    }
  });
});
