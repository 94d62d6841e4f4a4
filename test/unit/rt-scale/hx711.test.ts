// The HX711 protocol against the simulated chip's bit level, the sampler's
// arithmetic and filters, and the engine's faults, in virtual time.
import assert from 'node:assert/strict';

import { type Clock, VirtualClock } from '../../../nodes/rt-scale/clock';
import { simulatedHal } from '../../../nodes/rt-scale/hal';
import { decode24, encode24, GAIN_PULSES, type Hx711Pins, readFrame } from '../../../nodes/rt-scale/hx711-protocol';
import { calibrateCpg, countsToCg, FLAG_FAULT, FLAG_STABLE, med3, ReadingFilter, type SampleOut, Sampler } from '../../../nodes/rt-scale/sampler-core';
import { ScaleEngine } from '../../../nodes/rt-scale/scale-engine';
import type { ScaleEvent } from '../../../nodes/rt-scale/scale-protocol';
import { SimHx711 } from '../../../nodes/rt-scale/sim-hx711';
import type { CodedError } from '../../../nodes/shared/coded';
import { en } from '../../helpers/catalog';

/** A chip that holds one fixed code, for decoder vectors through the real pulse protocol. */
function chipWith(code: number): Hx711Pins {
  let bit = 0;
  let level: 0 | 1 = 0;
  return {
    dout: () => level,
    sckHigh: () => {
      if (bit < 24) return ((code >> (23 - bit++)) & 1) as 0 | 1;
      level = 1;
      return 1;
    },
    sckLow: () => undefined,
    tick: () => 0,
  };
}

function simEngine(opts: { sim?: ConstructorParameters<typeof SimHx711>[1]; gain?: 'A128' | 'B32' | 'A64'; sampler?: object } = {}) {
  const clock = new VirtualClock(1_000_000);
  const hal = simulatedHal(clock, { noiseCounts: 3, driftCountsPerMin: 0, ...(opts.sim ?? {}) });
  const sim = hal.sim!;
  const events: ScaleEvent[] = [];
  const samples: SampleOut[] = [];
  const engine = new ScaleEngine(
    hal,
    { gain: opts.gain ?? 'A128', cal: { zero: 84_000, cpgMilli: 420_000 }, sampler: opts.sampler ?? {}, calSamples: 8, periodUs: sim.periodUs },
    null,
    null,
    (e) => events.push(e),
  );
  engine.addListener((s) => samples.push(s));
  engine.start();
  const run = (ms: number): void => clock.advanceTo(clock.nowUs() + ms * 1000);
  return { clock, sim, engine, events, samples, run };
}

describe('HX711 protocol', () => {
  it('decodes the datasheet vectors through the pulse protocol', () => {
    const vectors: Array<[number, number]> = [
      [0x000000, 0],
      [0x7fffff, 8_388_607],
      [0x800000, -8_388_608],
      [0xffffff, -1],
      [0x000001, 1],
      [0x123456, 0x123456],
    ];
    for (const [code, value] of vectors) {
      const fr = readFrame(chipWith(code), 25);
      assert.equal(fr.ok, true);
      assert.equal(fr.code, code);
      assert.equal(fr.value, value, `0x${code.toString(16)}`);
      assert.equal(decode24(code), value);
      assert.equal(encode24(value), code);
    }
    assert.equal(encode24(10_000_000), 0x7fffff, 'saturates high');
    assert.equal(encode24(-10_000_000), 0x800000, 'saturates low');
  });

  it('refuses a frame when DOUT is high (not ready), when a pulse overran 60 us, or when DOUT stays low', () => {
    const notReady: Hx711Pins = { dout: () => 1, sckHigh: () => 1, sckLow: () => undefined, tick: () => 0 };
    assert.equal(readFrame(notReady, 25).failure, 'not-ready');
    let n = 0;
    let t = 0;
    const slow: Hx711Pins = { dout: () => (n >= 25 ? 1 : 0), sckHigh: () => 0, sckLow: () => void (t += ++n === 10 ? 75 : 1), tick: () => t };
    assert.equal(readFrame(slow, 25).failure, 'overrun');
    const stuckLow: Hx711Pins = { dout: () => 0, sckHigh: () => 0, sckLow: () => undefined, tick: () => 0 };
    assert.equal(readFrame(stuckLow, 25).failure, 'dout-low');
  });

  it('the simulated chip: weight in counts, gain by pulse count, settling after a gain change', () => {
    const clock = new VirtualClock(0);
    const sim = new SimHx711(clock, { noiseCounts: 0, driftCountsPerMin: 0, zeroCounts: 84_000, countsPerGram: 420 });
    sim.world.placedG = 100;
    const vals: number[] = [];
    let pulses: 25 | 26 | 27 = GAIN_PULSES.A128;
    sim.start(() => {
      const fr = readFrame(sim, pulses);
      assert.ok(fr.ok);
      vals.push(fr.value);
    });
    clock.advanceTo(12_500 * 8);
    assert.equal(vals.length, 8);
    // the first 4 conversions after power-up are unsettled, then the exact value
    assert.deepEqual(vals.slice(4), [126_000, 126_000, 126_000, 126_000]);
    pulses = GAIN_PULSES.A64;
    clock.advanceTo(12_500 * 14);
    // the conversion after the first 27-pulse frame is at A/64 but unsettled for 4, then half the counts
    assert.deepEqual(vals.slice(13), [63_000]);
    pulses = GAIN_PULSES.B32;
    clock.advanceTo(12_500 * 20);
    assert.ok(Math.abs(vals[19] - 1_200) < 5, `channel B reads its own (empty) input: ${vals[19]}`);
  });

  it('the simulated chip saturates at 0x7FFFFF and 0x800000', () => {
    const clock = new VirtualClock(0);
    const sim = new SimHx711(clock, { noiseCounts: 0 });
    const vals: number[] = [];
    sim.start(() => vals.push(readFrame(sim, 25).value));
    sim.world.placedG = 50_000;
    clock.advanceTo(12_500 * 6);
    assert.equal(vals.at(-1), 0x7fffff);
    sim.world.placedG = -50_000;
    clock.advanceTo(12_500 * 7);
    assert.equal(vals.at(-1), -0x800000);
  });

  it('a PD_SCK pulse held past 60 us powers the chip down: the rest reads 1s, the read is refused', () => {
    const clock = new VirtualClock(0);
    const sim = new SimHx711(clock, { noiseCounts: 0 });
    const frames: ReturnType<typeof readFrame>[] = [];
    sim.start(() => frames.push(readFrame(sim, 25)));
    clock.advanceTo(12_500 * 2);
    sim.faults.stretchProb = 1;
    clock.advanceTo(12_500 * 3);
    const f = frames.at(-1)!;
    assert.equal(f.ok, false);
    assert.equal(f.failure, 'overrun');
    assert.equal(f.code & 0x7fffff, 0x7fffff, 'bits after the power-down read as 1s');
    assert.ok(sim.powerDowns >= 1);
  });
});

describe('sampler arithmetic and filters', () => {
  it('converts counts to centigrams with tare and calibration', () => {
    const cal = { zero: 84_000, cpgMilli: 420_000 };
    assert.equal(countsToCg(84_000, cal), 0);
    assert.equal(countsToCg(84_000 + 42_000, cal), 10_000); // 100 g
    assert.equal(countsToCg(84_000 - 420, cal), -100);
    assert.equal(countsToCg(84_000 + 4, cal), 1); // 0.0095 g rounds to 1 cg
    // calibrate: 100 g placed reads 126000 counts with zero 84000 -> 420 counts/g
    assert.equal(calibrateCpg(126_000, 84_000, 10_000), 420_000);
    assert.equal(calibrateCpg(84_000 + 21_025, 84_000, 5_000), 420_500);
    assert.throws(() => calibrateCpg(84_000, 84_000, 10_000), { code: 'cal-no-change' });
    assert.throws(() => calibrateCpg(100_000, 84_000, 0), { code: 'bad-known-weight' });
    assert.throws(() => calibrateCpg(84_000, 84_000, 10_000), (e: CodedError) => /not seen/.test(en('rt-scale', e)));
    assert.throws(() => calibrateCpg(100_000, 84_000, 0), (e: CodedError) => /positive/.test(en('rt-scale', e)));
  });

  it('median of 3 rejects a single spike that a plain average would pass on', () => {
    assert.equal(med3(1, 2, 3), 2);
    assert.equal(med3(3, 1, 2), 2);
    assert.equal(med3(2, 3, 1), 2);
    assert.equal(med3(5, 5, 9), 5);
    const run = (median: boolean): number[] => {
      const s = new Sampler({ zero: 0, cpgMilli: 1000 }, { settle: 0, median, average: 2, stuckRun: 100 });
      const out: number[] = [];
      [1000, 1001, 1000, 9000, 1000, 1001, 1000].forEach((v, i) => {
        const r = s.onFrame({ ok: true, value: v, code: 0, maxHighUs: 1, frameUs: 0 }, i * 12_500);
        out.push(r.sample!.cg);
      });
      return out;
    };
    const withMedian = run(true);
    assert.ok(Math.max(...withMedian) <= 100_100, `spike rejected: ${withMedian}`);
    assert.ok(Math.max(...run(false)) > 400_000, 'without the median the spike passes');
  });

  it('the reading filter (shared by the sampler and the dosing benchmark): a median of 3, then a moving average over what it has, reset forgets', () => {
    const f = new ReadingFilter(true, 4);
    // the median needs 3 readings: the first two pass as they are, averaged over what the filter has
    assert.deepEqual([10, 20, 30, 1000, 40, 50].map((v) => f.push(v)), [10, 15, (10 + 20 + 20) / 3, (10 + 20 + 20 + 30) / 4, (20 + 20 + 30 + 40) / 4, (20 + 30 + 40 + 50) / 4]);
    f.reset();
    assert.equal(f.push(7), 7, 'after a reset nothing of before is averaged');
    const plain = new ReadingFilter(false, 2);
    assert.deepEqual([1, 3, 1000, 5].map((v) => plain.push(v)), [1, 2, 501.5, 502.5], 'without the median a spike passes into the average');
    assert.throws(() => new ReadingFilter(true, 0), RangeError);
    assert.throws(() => new ReadingFilter(true, 17), RangeError);
    assert.throws(() => new Sampler({ zero: 0, cpgMilli: 1000 }, { average: 17 }), RangeError);
  });

  it('marks stable only when the window spread is under the threshold, and settles 4 samples', () => {
    const s = new Sampler({ zero: 0, cpgMilli: 100_000 }, { settle: 4, median: false, average: 1, stableWindow: 5, stableCg: 2, stuckRun: 100 });
    const fr = (v: number) => ({ ok: true, value: v, code: 0, maxHighUs: 1, frameUs: 0 });
    for (let i = 0; i < 4; i++) assert.equal(s.onFrame(fr(i * 1000), 0).sample, null, 'settling samples are discarded');
    const flags: number[] = [];
    for (const v of [100, 101, 100, 102, 101, 100, 150, 100, 101]) flags.push(s.onFrame(fr(v), 0).sample!.flags & FLAG_STABLE);
    assert.deepEqual(flags, [0, 0, 0, 0, 1, 1, 0, 0, 0]);
  });

  it('a stuck value and saturation are flagged and counted, a fault after the run, recovery after a good sample', () => {
    const s = new Sampler({ zero: 0, cpgMilli: 100_000 }, { settle: 0, stuckRun: 3, faultRun: 3 });
    const fr = (v: number) => ({ ok: true, value: v, code: 0, maxHighUs: 1, frameUs: 0 });
    const evs: string[] = [];
    const flags: number[] = [];
    for (const v of [5, 6, 7, 7, 7, 7, 7, 8, 0x7fffff, 0x7fffff, 0x7fffff, 9]) {
      const r = s.onFrame(fr(v), 0);
      flags.push(r.sample!.flags & FLAG_FAULT);
      if (r.event) evs.push(r.event.t === 'fault' ? `fault:${r.event.reason}` : 'recovered');
    }
    assert.deepEqual(flags, [0, 0, 0, 0, 2, 2, 2, 0, 2, 2, 2, 0]);
    assert.deepEqual(evs, ['fault:stuck', 'recovered', 'fault:saturated', 'recovered']);
    assert.equal(s.bad.stuck, 3);
    assert.equal(s.bad.saturated, 3);
  });
});

/** Virtual time seen by a reader thread that is blocked from `from` to `until`: every timer due then fires at `until`. */
class BlockedReaderClock implements Clock {
  private from = Infinity;
  private until = -Infinity;
  constructor(readonly inner: VirtualClock) {}
  block(fromUs: number, untilUs: number): void {
    this.from = fromUs;
    this.until = untilUs;
  }
  nowUs(): number {
    return this.inner.nowUs();
  }
  at(atUs: number, fn: () => void): () => void {
    let cancel = this.inner.at(atUs, () => {
      const now = this.inner.nowUs();
      if (now >= this.from && now < this.until) cancel = this.inner.at(this.until, fn);
      else fn();
    });
    return () => cancel();
  }
}

describe('simulated chip on its own crystal (a late reader loses conversions)', () => {
  it('DOUT follows the crystal even when no timer of the reader thread has run (a starved thread sees the waiting conversion)', () => {
    // a clock whose timers never fire: the reader thread is starved; only time passes
    let now = 1_000_000;
    const clock: Clock = { nowUs: () => now, at: () => () => undefined };
    const sim = new SimHx711(clock, {});
    const edges: number[] = [];
    sim.start((e) => edges.push(e));
    assert.equal(sim.dout(), 1, 'no conversion yet');
    now += 12_500;
    assert.equal(sim.dout(), 0, 'the first conversion is ready on the crystal schedule, whether or not a timer ran');
    now += 3 * 12_500 + 100;
    assert.equal(sim.dout(), 0);
    assert.equal(sim.overwritten, 3, 'three conversions overwritten unread');
    assert.equal(sim.lastEdgeUs, 1_000_000 + 4 * 12_500, 'the waiting one is the latest');
    assert.deepEqual(edges, [], 'the interrupt is raised by the timer, not by a look at DOUT');
  });

  it('a reader blocked for more than a period finds only the latest conversion: the one before is overwritten unread', () => {
    const inner = new VirtualClock(1_000_000);
    const clock = new BlockedReaderClock(inner);
    const hal = simulatedHal(clock, { noiseCounts: 3, driftCountsPerMin: 0 });
    const sim = hal.sim!;
    const samples: Array<SampleOut & { readUs: number }> = [];
    const engine = new ScaleEngine(hal, { gain: 'A128', cal: { zero: 84_000, cpgMilli: 420_000 }, sampler: { settle: 0 }, calSamples: 8, periodUs: sim.periodUs }, null, null, () => undefined);
    engine.addListener((s) => samples.push({ ...s, readUs: clock.nowUs() }));
    engine.start();
    inner.advanceTo(1_000_000 + 10 * 12_500 + 1_000);
    assert.equal(sim.overwritten, 0, 'a reader on time loses nothing');
    assert.equal(engine.missed, 0);
    const n = samples.length;
    // blocked 30 ms (2.4 periods) right after a read: the conversions at +12.5 and +25 ms happen meanwhile
    const from = inner.nowUs();
    clock.block(from, from + 30_000);
    inner.advanceTo(from + 200_000);
    assert.equal(sim.overwritten, 1, 'the conversion the blocked reader did not read was overwritten');
    assert.equal(engine.missed, 1, 'and the sampler counts it missed');
    const after = samples[n];
    assert.equal(after.tUs, 1_000_000 + 12 * 12_500, 'the first read after the block carries the latest conversion, on the crystal schedule');
    assert.equal(after.tUs - samples[n - 1].tUs, 2 * 12_500, 'a gap of one lost conversion');
    assert.equal(after.readUs - after.tUs, 30_000 + 1_000 - 2 * 12_500, "the reader's lateness from the chip's data-ready");
    // the crystal kept its schedule: later reads are on time again
    const later = samples.slice(n + 1);
    assert.ok(later.length >= 10 && later.every((s) => (s.tUs - 1_000_000) % 12_500 === 0 && s.readUs === s.tUs), 'on time again after the block');
    engine.close();
  });
});

describe('scale engine (virtual time)', () => {
  it('samples at 80 SPS on data-ready, weight in centigrams, tare and calibrate', async () => {
    const e = simEngine();
    e.sim.world.placedG = 40; // a container
    e.run(1000);
    assert.ok(e.samples.length >= 75 && e.samples.length <= 77, `80 SPS minus 4 settling: ${e.samples.length}`);
    const dt = e.samples.slice(1).map((s, i) => s.tUs - e.samples[i].tUs);
    assert.ok(dt.every((d) => d === 12_500), 'every sample on its data-ready edge');
    const near = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
    near(e.samples.at(-1)!.cg, 4000, 2, '40 g container');
    const tared = e.engine.tare();
    e.run(200);
    near((await tared).zero, 84_000 + 40 * 420, 3, 'zero after tare');
    e.run(100);
    near(e.samples.at(-1)!.cg, 0, 2, 'tared weight');
    e.sim.world.placedG = 40 + 250; // 250 g calibration weight on the container
    e.run(300);
    const cal = e.engine.calibrate(25_000);
    e.run(200);
    near((await cal).cpgMilli, 420_000, 100, 'counts per gram x1000');
    e.run(100);
    near(e.samples.at(-1)!.cg, 25_000, 3, '250 g after calibration');
    assert.ok(e.events.some((ev) => ev.t === 'calibration' && ev.how === 'tare'));
  });

  it('no data-ready within 3 periods: counted, fault after the run, recovery when data returns', () => {
    const e = simEngine({ sampler: { faultRun: 2 } });
    e.run(300);
    e.sim.faults.stall = true;
    e.run(200);
    assert.ok(e.engine.sampler.bad.no_data >= 4, `no_data counted: ${e.engine.sampler.bad.no_data}`);
    assert.deepEqual(e.events.filter((x) => x.t === 'fault').map((x) => (x as { reason: string }).reason), ['no_data']);
    e.sim.faults.stall = false;
    e.run(200);
    assert.equal(e.events.at(-1)!.t, 'recovered');
  });

  it('an overrun read is discarded and counted, the chip restarts and the sampler settles again', () => {
    const e = simEngine();
    e.run(300);
    const before = e.samples.length;
    e.sim.faults.stretchProb = 1;
    e.run(13);
    e.sim.faults.stretchProb = 0;
    e.run(300);
    assert.equal(e.engine.sampler.bad.overrun, 1);
    const ts = e.samples.map((s) => s.tUs);
    const gap = ts.findIndex((v, i) => i >= before && v - ts[i - 1] > 12_500);
    assert.ok(gap > 0, 'the discarded read and the settling after it leave a gap in time');
    assert.ok(e.samples.every((s, i) => s.seq === i + 1), 'published samples are numbered without gaps');
  });

  it('power off stops sampling without faults; power on settles again', async () => {
    const e = simEngine();
    e.run(200);
    e.engine.power(false);
    const n = e.samples.length;
    e.run(500);
    assert.equal(e.samples.length, n);
    assert.equal(e.events.length, 0, 'powered down is not a fault');
    await assert.rejects(e.engine.tare(), { code: 'powered-down' }, 'no tare while powered down (coded: rt-scale words it)');
    e.engine.power(true);
    e.run(500);
    assert.ok(e.samples.length > n + 30);
    assert.ok(e.sim.isPoweredDown === false);
  });
});
