import assert from 'node:assert/strict';

import { agreedRipple, coastVerdict, JOINT_GRID_US, type JointRecord, jointRipple, DEFAULT_PARAMS, type DoseRecord, DosingController, type DosingParams, fitSpinUpJob, type LearnedPlant, trustedLag, RippleFit, type ShortRipple } from '../../../nodes/rt-dosing/dosing-core';
import { learnedPayload } from '../../../nodes/rt-dosing/dose-result';
import type { CodedError } from '../../../nodes/shared/coded';
import { en } from '../../helpers/catalog';
import { DEFAULT_PLANT, flowAt, Plant, type PlantParams } from '../../helpers/dosing-plant';

const PERIOD_US = 12_500; // 80 SPS

/** Runs one dose in virtual time; returns the record and the plant's true final mass. */
function dose(
  c: DosingController,
  plant: Plant,
  targetG: number,
  hooks: { onStep?: (tUs: number, plant: Plant) => boolean | void; onDuty?: (duty: number) => void } = {},
  /** Called when the dose has ended, before its record is read (as the runner does). */
  afterEnd?: (c: DosingController) => void,
): { rec: DoseRecord; trueG: number } {
  let t = plant.timeUs;
  const zero = plant.mass;
  c.setSamplePeriod(PERIOD_US);
  c.start(Math.round(targetG * 100), t);
  let duty = 0;
  for (let i = 0; i < 200_000 && c.running; i++) {
    t += PERIOD_US;
    plant.advance(t);
    if (hooks.onStep?.(t, plant) === true) continue; // sample suppressed
    const cmd = c.step({ cg: plant.readCg(), tUs: t });
    if (cmd.duty !== duty) hooks.onDuty?.(cmd.duty);
    if (cmd.stopAtUs !== undefined) {
      if (cmd.duty !== duty) plant.setDuty(cmd.duty, t);
      plant.setDuty(0, cmd.stopAtUs);
      duty = 0;
    } else if (cmd.duty !== duty) {
      plant.setDuty(cmd.duty, t);
      duty = cmd.duty;
    }
  }
  if (duty !== 0) plant.setDuty(0, t);
  plant.advance(t + 2_000_000);
  afterEnd?.(c);
  const rec = c.lastRecord();
  assert.ok(rec, 'dose finished');
  return { rec, trueG: plant.mass - zero };
}

/** |error| (g) of `doses` consecutive doses of one controller on one plant, the first `skip` left out (learning). */
function absErrors(c: DosingController, plant: Plant, targetG: number, doses: number, skip: number): number[] {
  const errs: number[] = [];
  for (let k = 0; k < doses; k++) {
    const { trueG } = dose(c, plant, targetG);
    if (k >= skip) errs.push(Math.abs(trueG - targetG));
  }
  return errs;
}

/** The 95th percentile (nearest rank). */
function p95Of(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.ceil(0.95 * sorted.length) - 1];
}

/**
 * The p95 of |error| per seed, each seed a cold controller on its own draw of the plant, doses `skip`.. of `doses`, and
 * their mean; `each` sees each seed's controller after its doses.
 */
function p95PerSeed(seeds: number[], plantP: Omit<PlantParams, 'seed'>, targetG: number, doses: number, skip: number, each?: (c: DosingController, seed: number) => void): { p95s: number[]; mean: number } {
  const p95s = seeds.map((seed) => {
    const c = new DosingController({ toleranceCg: 10 });
    const p95 = p95Of(absErrors(c, new Plant({ ...plantP, seed }), targetG, doses, skip));
    each?.(c, seed);
    return p95;
  });
  return { p95s, mean: p95s.reduce((a, b) => a + b, 0) / p95s.length };
}

/** A seeded reading noise, uniform within +-2 cg (a linear congruential generator: the same draws for a seed). */
function seededNoise(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return (x / 2147483648 - 0.5) * 4;
  };
}

/** The seed-12 list's p17 (10.8 % ripple at 1.3 Hz at full speed, 28.9 g/s, a 20 permille dead band): dosed 176 g. */
const P17: Omit<PlantParams, 'seed'> = { coarseGps: 28.9, delayS: 0.52, jitterS: 0.018, ripple: 0.108, rippleHz: 1.3, noiseG: 0.008, lagS: 0.099, deadBand: 20, driftPerMin: 0 };

function fresh(params: Partial<DosingParams> = {}, plantP: Partial<PlantParams> = {}, tau = 200_000) {
  return { c: new DosingController({ fineDuty: 100, fineBandCg: 200, toleranceCg: 10, ...params }, tau), plant: new Plant({ ...DEFAULT_PLANT, ...plantP }) };
}

describe('dosing-core: DosingController', () => {
  it('rejects bad targets and a second start while running', () => {
    const c = new DosingController();
    // coded errors, worded by rt-dosing's catalog (they come back on the dosing node's own lease)
    assert.throws(() => c.start(-5, 0), { code: 'bad-target' });
    assert.throws(() => c.start(0, 0), { code: 'bad-target' });
    assert.throws(() => c.start(12.5, 0), { code: 'bad-target' });
    assert.throws(() => c.start(NaN, 0), { code: 'bad-target' });
    assert.throws(() => c.start(DEFAULT_PARAMS.neverExceedCg, 0), { code: 'beyond-never-exceed', params: { cg: DEFAULT_PARAMS.neverExceedCg, limit: DEFAULT_PARAMS.neverExceedCg } });
    assert.throws(() => c.start(-5, 0), (e: CodedError) => /positive/.test(en('rt-dosing', e)));
    assert.throws(() => c.start(DEFAULT_PARAMS.neverExceedCg, 0), (e: CodedError) => /never-exceed/.test(en('rt-dosing', e)));
    c.start(1000, 0);
    assert.throws(() => c.start(1000, 0), { code: 'dose-already-running' });
    assert.throws(() => c.start(1000, 0), (e: CodedError) => /already running/.test(en('rt-dosing', e)));
  });

  it('a fresh station (nothing known) probes, then tares, runs coarse then fine, cuts off early, settles, and learns its plant', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT });
    const states = new Set<string>();
    const errors: number[] = [];
    for (let k = 0; k < 12; k++) {
      const { rec, trueG } = dose(c, plant, 100, { onStep: () => void states.add(c.state) });
      assert.notEqual(rec.result, 'aborted', `dose ${k}: ${rec.reason}`);
      errors.push(trueG - 100);
      assert.ok(rec.coarseUs > 0 && rec.fineUs > 0 && rec.settleUs > 0);
      assert.deepEqual(rec.learned, c.learned, 'the record carries what was learned');
    }
    for (const s of ['taring', 'coarse', 'fine', 'settling']) assert.ok(states.has(s), `visited ${s}`);
    const L = c.learned;
    // measured, not given: the plant's 0.35 s in-flight time, 20 g/s and 2 g/s, 2 Hz ripple, 0.01 g noise
    assert.ok(Math.abs(c.tau - 350_000) < 30_000, `tau ${c.tau}`);
    assert.ok(Math.abs(L.flowCgPerS['1000'] - 2000) < 60, `coarse flow ${L.flowCgPerS['1000']}`);
    assert.ok(Math.abs(L.flowCgPerS['100'] - 200) < 15, `fine flow ${L.flowCgPerS['100']}`);
    assert.ok(Math.abs(L.ripplePeriodUs - 500_000) < 50_000, `ripple period ${L.ripplePeriodUs}`);
    assert.ok(L.noiseCg >= 1 && L.noiseCg <= 2, `noise ${L.noiseCg}`);
    assert.ok(L.delayUs > 300_000 && L.delayUs < 450_000, `delay ${L.delayUs}`);
    assert.ok(Math.abs(errors[0]) < 0.3, `the cold first dose does not overshoot grossly: ${errors[0].toFixed(3)}`);
    const late = errors.slice(3).map(Math.abs);
    assert.ok(Math.max(...late) <= 0.06, `errors after learning: ${late.map((e) => e.toFixed(3)).join(' ')}`);
  });

  it('strong slow ripple at fine speed: the cut-off predicts the ripple phase (p95 within 0.03 g after learning)', () => {
    // 10 % flow ripple at 0.66 Hz: at fine speed it moves the in-flight mass by up to +-0.07 g dose to dose;
    // a small dose on a fast plant (35 g/s, 0.66 s delay, 12 g) runs mostly at fine speed
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ coarseGps: 35.2, delayS: 0.66, jitterS: 0.001, ripple: 0.1, rippleHz: 0.66, noiseG: 0.002, lagS: 0.16, deadBand: 59, driftPerMin: 0, seed: 21 });
    const errs: number[] = [];
    for (let k = 0; k < 30; k++) {
      const { rec, trueG } = dose(c, plant, 12);
      assert.notEqual(rec.result, 'aborted', `dose ${k}: ${rec.reason}`);
      errs.push(Math.abs(trueG - 12));
    }
    const late = errs.slice(8).sort((a, b) => a - b);
    const p95 = late[Math.ceil(0.95 * late.length) - 1];
    assert.ok(p95 <= 0.03, `p95 ${p95.toFixed(3)} g: ${errs.map((e) => e.toFixed(3)).join(' ')}`);
    const L = c.learned;
    assert.ok(Math.abs((L.fineRipplePeriodUs ?? 0) - 1_515_152) < 30_000, `fine ripple period ${L.fineRipplePeriodUs} us`);
  });

  it('the after-dose ripple search runs in slices (work()) and learns exactly what running it at once learns', () => {
    // it costs tens of ms on the scale's thread: the runner runs it between samples, a slice at a time
    const mk = () => ({
      c: new DosingController({ toleranceCg: 10 }),
      plant: new Plant({ coarseGps: 35.2, delayS: 0.66, jitterS: 0.001, ripple: 0.1, rippleHz: 0.66, noiseG: 0.002, lagS: 0.16, deadBand: 59, driftPerMin: 0, seed: 5 }),
    });
    const atOnce = mk();
    const sliced = mk();
    let maxSlices = 0;
    for (let k = 0; k < 4; k++) {
      const a = dose(atOnce.c, atOnce.plant, 12).rec;
      // the same dose, its learning finished through work() with a budget of one step per call
      let slices = 0;
      const b = dose(sliced.c, sliced.plant, 12, {}, (c) => {
        let tick = 0;
        while (c.work(1, () => tick++)) slices++;
        assert.equal(c.pendingWork, false);
      }).rec;
      maxSlices = Math.max(maxSlices, slices);
      assert.deepEqual(b, a, `dose ${k}: same record and learned plant`);
    }
    assert.ok(maxSlices > 20, `the search was cut into ${maxSlices} slices`);
    assert.ok((atOnce.c.learned.fineRipplePeriodUs ?? 0) > 0, 'a ripple was learned');
  });

  it('reference plant: p95 within 0.03 g over 40 doses from a cold start', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, seed: 1 });
    const errs = [...Array(40).keys()].map(() => Math.abs(dose(c, plant, 100).trueG - 100)).slice(5);
    const sorted = [...errs].sort((a, b) => a - b);
    const p95 = sorted[Math.ceil(0.95 * sorted.length) - 1];
    assert.ok(p95 <= 0.03, `p95 ${p95.toFixed(3)} g`);
  });

  it('RippleFit: finds a ripple period within 0.5 %, and no ripple in a line nor in a decaying transient', () => {
    const noise = seededNoise(7);
    const f = new RippleFit(1024);
    for (let i = 0; i < 400; i++) {
      const t = 1_000_000_000 + i * 12_500;
      f.push(t, Math.round(200 * (i * 0.0125) + 6 * Math.sin((2 * Math.PI * t) / 1_300_000) + noise()));
    }
    const m = f.searchPeriod(150_000, 2_500_000, 1);
    assert.ok(m && Math.abs(m.periodUs - 1_300_000) < 6_500, `period ${m?.periodUs}`);
    const line = new RippleFit(1024);
    const tail = new RippleFit(1024);
    for (let i = 0; i < 400; i++) {
      const s = i * 0.0125;
      line.push(i * 12_500, Math.round(200 * s + noise()));
      // the coarse tail of a 160 ms motor lag: 40 g/s more, decaying
      tail.push(i * 12_500, Math.round(200 * s + 4000 * 0.16 * (1 - Math.exp(-s / 0.16)) + noise()));
    }
    assert.equal(line.searchPeriod(150_000, 2_500_000, 1), null);
    assert.equal(tail.searchPeriod(150_000, 2_500_000, 1, 1_000_000), null, 'the tail left out (from 1 s), nothing left');
  });

  it('RippleFit: a ripple far slower than the window is a curve there, not a period at the edge of the search', () => {
    const noise = seededNoise(11);
    // a fine ramp of 3 s at 80 SPS, 2 g/s, with a 12 % ripple that follows the motor's speed: 0.17 Hz at fine speed (5.9 s)
    const slow = new RippleFit(1024);
    // the same ramp with a ripple of 0.8 s, 3.75 periods in the window: a period the window resolves
    const fast = new RippleFit(1024);
    for (let i = 0; i < 240; i++) {
      const s = i * 0.0125;
      const w = 200 * s;
      slow.push(i * 12_500, Math.round(w - ((0.12 * 200 * 5.9) / (2 * Math.PI)) * Math.cos((2 * Math.PI * s) / 5.9 + 1) + noise()));
      fast.push(i * 12_500, Math.round(w - ((0.12 * 200 * 0.8) / (2 * Math.PI)) * Math.cos((2 * Math.PI * s) / 0.8 + 1) + noise()));
    }
    // the search across doses' acceptance (1.5 periods in the window, a loose share of the residuals)
    const search = (f: RippleFit): ReturnType<RippleFit['searchPeriod']> => {
      const job = f.searchPeriodJob(150_000, 2_500_000, 1, 0, 1.5, false, 4, 0.97, 0.25);
      for (;;) {
        const r = job.next();
        if (r.done) return r.value;
      }
    };
    const cubic = slow.cubicRss();
    const edge = slow.solve(2_000_000);
    assert.ok(edge && cubic >= 0 && 2 * cubic < edge.rss, `a cubic leaves ${cubic} cg^2, a 2 s sinusoid ${edge?.rss}`);
    assert.equal(search(slow), null, 'no period taken from the slow ripple');
    const m = search(fast);
    assert.ok(m && Math.abs(m.periodUs - 800_000) < 16_000, `the resolved one found: ${m?.periodUs}`);
  });

  it('a LearnedPlant stored by an older version (no ripple-at-fine fields) loads and doses warm', () => {
    const a = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, seed: 6 });
    for (let k = 0; k < 4; k++) dose(a, plant, 100);
    const old = JSON.parse(JSON.stringify(a.learned)) as Record<string, unknown>;
    delete old.fineRipplePeriodUs;
    delete old.fineRippleCg;
    const b = new DosingController({ toleranceCg: 10 }, old as unknown as LearnedPlant);
    assert.equal(b.learned.fineRipplePeriodUs, 0);
    const { rec, trueG } = dose(b, plant, 100);
    assert.ok(rec.coarseUs > 0, 'warm: no probe');
    assert.ok(Math.abs(trueG - 100) <= 0.1, `error ${(trueG - 100).toFixed(3)}`);
  });

  it('the recent line cuts\' fine flows are stored with the plant: a restarted controller doses exactly as one that kept running', () => {
    // p03's physics: a weak ripple the model leaves alone, every dose cut by the line, which plans with the recent
    // doses' median fine flow. Before this history was stored, a restart planned its next 3 doses with their own
    // slope (the history started empty): the same plant, the same draws, another dose.
    const physics = { coarseGps: 29.7, delayS: 0.6, jitterS: 0.016, ripple: 0.021, rippleHz: 0.8, noiseG: 0.01, lagS: 0.123, deadBand: 52, driftPerMin: 0 };
    // two identical stations (same plant, same draws); the second restarts from what it stored after 12 doses
    const a = new DosingController({ toleranceCg: 10 });
    const pa = new Plant({ ...physics, seed: 4 });
    const a2 = new DosingController({ toleranceCg: 10 });
    const pb = new Plant({ ...physics, seed: 4 });
    for (let k = 0; k < 12; k++) {
      dose(a, pa, 32.6);
      dose(a2, pb, 32.6);
    }
    const stored = JSON.parse(JSON.stringify(a2.learned)) as LearnedPlant;
    assert.ok((stored.recentFineFlowCgPerS ?? []).length >= 3, `history stored: ${JSON.stringify(stored.recentFineFlowCgPerS)}`);
    const b = new DosingController({ toleranceCg: 10 }, stored);
    assert.deepEqual(b.learned.recentFineFlowCgPerS, stored.recentFineFlowCgPerS);
    for (let k = 0; k < 3; k++) {
      const ra = dose(a, pa, 32.6);
      const rb = dose(b, pb, 32.6);
      assert.equal(rb.trueG, ra.trueG, `dose ${k} after the restart`);
    }
    // bad entries of a hand-edited file are dropped, not planned with
    const edited = { ...stored, recentFineFlowCgPerS: [150, -3, 'x', null, 0, 149] } as unknown as LearnedPlant;
    assert.deepEqual(new DosingController({ toleranceCg: 10 }, edited).learned.recentFineFlowCgPerS, [150, 149]);
    // an older stored plant (no history) starts one
    const older = { ...stored } as Record<string, unknown>;
    delete older.recentFineFlowCgPerS;
    assert.deepEqual(new DosingController({ toleranceCg: 10 }, older as unknown as LearnedPlant).learned.recentFineFlowCgPerS, []);
  });

  it('a stored plant with fields missing or of the wrong type (hand-edited, partly written) starts the controller, which learns those again', () => {
    const bad = [
      { version: 1, doses: 2, tauUs: 300_000 },
      { version: 1, doses: 'x', tauUs: -4, recentTauUs: 'junk', flowCgPerS: 5, delayUs: null, noiseCg: Number.NaN },
      { version: 1, flowCgPerS: { '100': 'fast', '1000': -3 }, recentTauUs: [300_000, 'x', null] },
      { version: 1, recentShortRipples: [{ periodUs: 1e6, ampCg: 2, ux: 3, uy: 0 }, null], fineRippleAcrossDoses: 'yes' },
      { version: 1, recentShortRipples: { coarse: [] }, fineRippleAcrossDoses: 1 },
    ] as unknown as LearnedPlant[];
    for (const prior of bad) {
      const c = new DosingController({ fineDuty: 100, toleranceCg: 10 }, prior);
      const L = c.learned;
      assert.ok(Array.isArray(L.recentTauUs) && L.recentTauUs.every(Number.isFinite), JSON.stringify(L.recentTauUs));
      assert.ok(Object.values(L.flowCgPerS).every((v) => Number.isFinite(v) && v > 0), JSON.stringify(L.flowCgPerS));
      for (const k of ['doses', 'tauUs', 'delayUs', 'noiseCg'] as const) assert.ok(Number.isFinite(L[k]) && L[k] >= 0, `${k} ${L[k]}`);
      assert.deepEqual(L.recentShortRipples, []);
      assert.equal(L.fineRippleAcrossDoses, false);
      const { rec } = dose(c, new Plant({ ...DEFAULT_PLANT }), 20);
      assert.notEqual(rec.result, 'aborted', String(rec.reason));
    }
  });

  it('a coarse burst too short for a steady ramp gives an estimated coarse flow, kept apart from the measured ones and shown as such', () => {
    // a fast granule (45 g/s, strong 4 Hz ripple) and a small dose: the second dose's coarse phase lasts a third of a
    // second, too short to fit; the mass it delivered estimates the coarse flow, which is planned with but not measured
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ coarseGps: 45, delayS: 0.15, jitterS: 0.005, ripple: 0.12, rippleHz: 4, noiseG: 0.019, lagS: 0.02, deadBand: 0, driftPerMin: 0, seed: 12 });
    const shown: Array<Record<string, unknown>> = [];
    let sawEstimate = false;
    // the last two doses are 120 g: a coarse phase long enough (2.5 s) to fit its ramp over the ripple. At 40 g the
    // coarse phase (0.7 s) is shorter than the fit the 4 Hz ripple (scaled from the fine one) asks for, and the
    // estimate plans it
    for (let k = 0; k < 6; k++) {
      const { rec } = dose(c, plant, k < 4 ? 40 : 120);
      assert.notEqual(rec.result, 'aborted', `dose ${k}: ${rec.reason}`);
      const L = rec.learned;
      const est = L.flowEstCgPerS?.['1000'];
      const measured = L.flowCgPerS['1000'];
      assert.ok(!(est !== undefined && measured !== undefined), `dose ${k}: an estimate never stands beside a measurement ${JSON.stringify(L)}`);
      if (est !== undefined) {
        sawEstimate = true;
        assert.ok(Math.abs(est - 4500) <= 0.15 * 4500, `dose ${k}: the burst's estimate ${est} cg/s vs 4500`);
      }
      shown.push(learnedPayload(L));
    }
    assert.ok(sawEstimate, `a short burst gave an estimate: ${JSON.stringify(shown)}`);
    const withEst = shown.find((l) => (l.flow_estimated as string[]).includes('100%'));
    assert.ok(withEst && (withEst.flow_gps as Record<string, number>)['100%'] > 0, `shown: the estimated coarse flow with its mark ${JSON.stringify(shown)}`);
    // the later doses (a longer coarse phase, planned with the estimate) measure it: the estimate is dropped
    const L = c.learned;
    assert.ok(Math.abs(L.flowCgPerS['1000'] - 4500) <= 0.05 * 4500, `measured coarse flow ${L.flowCgPerS['1000']}`);
    assert.deepEqual(L.flowEstCgPerS, {});
    assert.deepEqual(shown[shown.length - 1].flow_estimated, []);
  });

  it('a stored estimate is read back as an estimate; one beside a measured flow of the same duty is dropped', () => {
    const prior = { ...new DosingController().learned, doses: 2, flowCgPerS: { '100': 450 }, flowEstCgPerS: { '1000': 4400, '100': 500 } };
    const L = new DosingController({ fineDuty: 100 }, prior).learned;
    assert.deepEqual(L.flowCgPerS, { '100': 450 });
    assert.deepEqual(L.flowEstCgPerS, { '1000': 4400 });
    const shown = learnedPayload(L);
    assert.deepEqual(shown.flow_gps, { '10%': 4.5, '100%': 44 });
    assert.deepEqual(shown.flow_estimated, ['100%']);
    const junk = new DosingController({ fineDuty: 100 }, { ...prior, flowEstCgPerS: 'x' } as unknown as LearnedPlant).learned;
    assert.deepEqual(junk.flowEstCgPerS, {});
  });

  it('a warm coarse phase too short to refit: the mass its burst delivered replaces a learned coarse flow 10 % low, not one 1 % off', () => {
    // 40 g/s, 0.6 s fall: a 55 g dose runs coarse for about one second, which leaves fewer than 12 samples of coarse ramp
    // (no refit); the fine band of 20 g keeps the fine phase long enough to be measured even when the low flow lands
    // too much coarse material. A learned flow 10 % low (a ramp fitted during the spin-up) disagrees with the burst by
    // far more than the ripple, noise and jitter carry, and is replaced; 1 % off is within that slack and is kept.
    const plantP = { ...DEFAULT_PLANT, coarseGps: 40, delayS: 0.6, lagS: 0 };
    const trueCg = Math.round(100 * flowAt(plantP, 1000));
    for (const seed of [1, 2, 3]) {
      const a = new DosingController({ toleranceCg: 10, fineBandCg: 2000 });
      const warm = new Plant({ ...plantP, seed });
      for (let k = 0; k < 3; k++) dose(a, warm, 200); // long coarse phases: the coarse flow is measured
      const stored = JSON.parse(JSON.stringify(a.learned)) as LearnedPlant;
      assert.ok(Math.abs(stored.flowCgPerS['1000'] - trueCg) <= 0.01 * trueCg, `seed ${seed}: warm-up coarse flow ${stored.flowCgPerS['1000']}`);
      for (const [share, replaced] of [[0.9, true], [0.99, false]] as const) {
        const seeded = Math.round(share * trueCg);
        const c = new DosingController({ toleranceCg: 10, fineBandCg: 2000 }, { ...stored, flowCgPerS: { ...stored.flowCgPerS, '1000': seeded } });
        const { rec } = dose(c, new Plant({ ...plantP, seed: seed + 100 }), 55);
        assert.notEqual(rec.result, 'aborted', `seed ${seed} x${share}: ${rec.reason}`);
        assert.ok(rec.coarseUs > 500_000 && rec.coarseUs < 1_200_000, `seed ${seed} x${share}: coarse ${rec.coarseUs} us`);
        const after = c.learned.flowCgPerS['1000'];
        if (replaced) assert.ok(Math.abs(after - trueCg) <= 0.03 * trueCg, `seed ${seed}: learned ${seeded} cg/s -> ${after} (plant ${trueCg})`);
        else assert.equal(after, seeded, `seed ${seed}: learned ${seeded} cg/s within the slack, kept (now ${after})`);
      }
    }
  });

  it('a learned plant carries over: a controller built from it is warm (no probe) and as accurate', () => {
    const a = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, seed: 5 });
    for (let k = 0; k < 5; k++) dose(a, plant, 100);
    const stored = JSON.parse(JSON.stringify(a.learned)) as LearnedPlant;
    const b = new DosingController({ toleranceCg: 10 }, stored);
    assert.deepEqual(b.learned, stored);
    const errs = [0, 1, 2].map(() => dose(b, plant, 100).trueG - 100);
    assert.ok(Math.max(...errs.map(Math.abs)) <= 0.06, errs.map((e) => e.toFixed(3)).join(' '));
  });

  it('cold start on a long-delay plant (0.8 s fall, 150 ms spin-up): no abort, no gross overshoot, then within tolerance', () => {
    for (const delayS of [0.6, 0.8]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ ...DEFAULT_PLANT, delayS, lagS: 0.15, jitterS: 0.01, seed: 3 });
      const errors: number[] = [];
      for (let k = 0; k < 8; k++) {
        const { rec, trueG } = dose(c, plant, 50);
        assert.notEqual(rec.result, 'aborted', `delay ${delayS} dose ${k}: ${rec.reason}`);
        errors.push(trueG - 50);
      }
      assert.ok(Math.abs(errors[0]) < 0.5, `delay ${delayS}: first dose ${errors[0].toFixed(3)}`);
      const late = errors.slice(3).map(Math.abs);
      assert.ok(Math.max(...late) <= 0.1, `delay ${delayS}: ${late.map((e) => e.toFixed(3)).join(' ')}`);
    }
  });

  it('a fast plant (45 g/s, 0.5 s delay) stays within tolerance after learning', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, coarseGps: 45, delayS: 0.5, jitterS: 0.005, lagS: 0.08, seed: 7 });
    const errors: number[] = [];
    for (let k = 0; k < 15; k++) {
      const { rec, trueG } = dose(c, plant, 200);
      assert.notEqual(rec.result, 'aborted', `dose ${k}: ${rec.reason}`);
      errors.push(trueG - 200);
    }
    const late = errors.slice(5).map(Math.abs);
    assert.ok(Math.max(...late) <= 0.1, `errors after learning: ${late.map((e) => e.toFixed(3)).join(' ')}`);
  });

  it('recovers from a -20 % flow step within 3 doses (the in-flight time is a time, flows are measured in every dose)', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, coarseGps: 30, delayS: 0.45, lagS: 0.05, seed: 9 });
    for (let k = 0; k < 6; k++) dose(c, plant, 100);
    plant.flowScale = 0.8;
    const after = [0, 1, 2, 3, 4].map(() => Math.abs(dose(c, plant, 100).trueG - 100));
    assert.ok(after.slice(0, 3).some((e) => e <= 0.05), `errors after the step: ${after.map((e) => e.toFixed(3)).join(' ')}`);
    assert.ok(Math.max(...after) <= 0.1, `errors after the step: ${after.map((e) => e.toFixed(3)).join(' ')}`);
  });

  it('a -20 % flow step on a plant whose coarse flow is only ever estimated: the estimate comes down, and the doses with it (seed-3 p04 of the benchmark)', () => {
    // 48 g/s, a 1.1 Hz ripple, 38.6 g doses: the coarse phase is too short to refit its ramp over the ripple, so the
    // coarse flow is an estimate from each burst's mass. An estimate was only ever raised by a short burst: after the
    // step the high estimate ended every coarse phase early, the bursts stayed short and the estimate high (4876 cg/s
    // against 3832), and a dose took 7.9 s instead of 4.1 s (found in review). A burst that disagrees by more than its
    // mass can carry now replaces it, up or down.
    for (const seed of [1, 2, 3]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ coarseGps: 47.9, delayS: 0.16, jitterS: 0.002, lagS: 0.125, deadBand: 42, ripple: 0.049, rippleHz: 1.1, noiseG: 0.002, driftPerMin: 0, seed });
      const before: number[] = [];
      for (let k = 0; k < 20; k++) {
        const { rec } = dose(c, plant, 38.6);
        if (k >= 10) before.push(rec.durationUs);
      }
      plant.flowScale = 0.8;
      const after: number[] = [];
      const errs: number[] = [];
      for (let k = 0; k < 20; k++) {
        const { rec, trueG } = dose(c, plant, 38.6);
        if (k >= 10) {
          after.push(rec.durationUs);
          errs.push(Math.abs(trueG - 38.6));
        }
      }
      const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
      const L = c.learned;
      const flow = L.flowEstCgPerS?.['1000'] ?? L.flowCgPerS['1000'];
      assert.ok(Math.abs(flow - 0.8 * 4790) <= 0.1 * 0.8 * 4790, `seed ${seed}: coarse flow ${flow} cg/s after the step (true ${0.8 * 4790})`);
      // at 80 % flow the same dose takes longer: a quarter more coarse time, never twice the time
      assert.ok(mean(after) <= 1.5 * mean(before), `seed ${seed}: dose time ${(mean(before) / 1e6).toFixed(2)} s -> ${(mean(after) / 1e6).toFixed(2)} s`);
      assert.ok(Math.max(...errs) <= 0.05, `seed ${seed}: errors after the step ${errs.map((e) => e.toFixed(3)).join(' ')}`);
    }
  });

  it('a small dose (less than the coarse in-flight mass) runs at fine speed, or after a short coarse burst', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, coarseGps: 40, delayS: 0.6, seed: 4 });
    for (let k = 0; k < 3; k++) dose(c, plant, 200); // learns the coarse flow
    const errs = [0, 1, 2, 3].map(() => {
      const { rec, trueG } = dose(c, plant, 15);
      assert.ok(rec.coarseUs < 300_000, `coarse ${rec.coarseUs} us`);
      return trueG - 15;
    });
    assert.ok(Math.max(...errs.slice(1).map(Math.abs)) <= 0.1, errs.map((e) => e.toFixed(3)).join(' '));
  });

  it('the settled weight is read after the in-flight material has landed (noisy scale, slow motor coast): judged = true on average', () => {
    // a mean that still holds part of the landing reads low (it was -0.022 g here): the in-flight time is then learned
    // short and every later dose overshoots by as much, while the controller reports it on target
    for (const seed of [11, 12]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ ...DEFAULT_PLANT, coarseGps: 22, delayS: 0.42, jitterS: 0.019, lagS: 0.17, deadBand: 30, ripple: 0, noiseG: 0.029, seed });
      const d: number[] = [];
      for (let k = 0; k < 25; k++) {
        const { rec, trueG } = dose(c, plant, 50);
        if (k >= 3) d.push(rec.finalCg / 100 - trueG);
      }
      const mean = d.reduce((a, x) => a + x, 0) / d.length;
      assert.ok(Math.abs(mean) <= 0.006, `seed ${seed}: judged - true ${mean.toFixed(4)} g on average`);
    }
  });

  it('a guard cut at a steady fine flow still teaches the in-flight time (a slow-coasting plant learns in fewer doses)', () => {
    // 0.72 s fall, 190 ms motor lag, a 22 g dose: the first warm doses switch to fine too late for the fine fit, and the
    // overshoot guard cuts. Once the coarse tail has landed, the flow is the known fine flow (checked on the readings):
    // the mass landed after such a cut measures the in-flight time like any other (it used to be thrown away)
    for (const seed of [5, 6]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ coarseGps: 13.1, delayS: 0.72, jitterS: 0.007, ripple: 0.127, rippleHz: 2.5, noiseG: 0.003, lagS: 0.19, deadBand: 6, driftPerMin: 0, seed });
      let learnedFrom = 0;
      for (let k = 0; k < 7; k++) {
        const n0 = c.learned.recentTauUs.length;
        const { rec } = dose(c, plant, 21.9);
        assert.notEqual(rec.result, 'aborted');
        if (rec.learned.recentTauUs.length > n0) learnedFrom++;
      }
      assert.ok(learnedFrom >= 4, `seed ${seed}: learned from ${learnedFrom} of 7 doses`);
    }
  });

  it('a ripple about as strong as one reading\'s noise, resolved by the fit over its window: the model cuts once learned (no delay jitter)', () => {
    // 7.5 % at 3.4 Hz on 1.3 g/s fine flow: its swing moves the in-flight mass by about one reading's noise (0.004 g
    // sigma), far more than a fit over 1.5 periods (35 readings) resolves. Left to the line (as before this change),
    // the 3 seeds gave p95 0.0123-0.0143 g, mean 0.0136; with the ripple model 0.0069-0.0106, mean 0.0085.
    const { p95s, mean } = p95PerSeed([1, 2, 3], { coarseGps: 17.3, delayS: 0.13, jitterS: 0, ripple: 0.075, rippleHz: 3.4, noiseG: 0.004, lagS: 0.184, deadBand: 26, driftPerMin: 0 }, 370, 40, 10);
    assert.ok(mean <= 0.0105, `p95 per seed ${p95s.map((v) => v.toFixed(4)).join(', ')} g, mean ${mean.toFixed(4)}`);
  });

  it('a lag the coarse burst cannot measure: the ripple model fits after the measured settle time, not over the end of the coarse tail', () => {
    // p16's physics: an 11.7 g dose at 24.6 g/s is a 0.2 s coarse burst, whose in-flight time reads under the dead
    // time, so no motor lag is measured and the coarse tail is taken as gone at the dead time. The ripple window
    // used to open there (4/5 of the settle time): the fitted amplitude of a 1.7 cg ripple ran 0.3-3.4 cg from dose
    // to dose, and the controller before this change gave p95 0.044, 0.044 and 0.072 g on these seeds (now 0.031-0.033).
    for (const seed of [1, 2, 3]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ coarseGps: 24.6, delayS: 0.58, jitterS: 0.01, ripple: 0.124, rippleHz: 2.6, noiseG: 0.009, lagS: 0.082, deadBand: 11, driftPerMin: 0, seed });
      const p95 = p95Of(absErrors(c, plant, 11.7, 40, 10));
      assert.ok(p95 <= 0.037, `seed ${seed}: p95 ${p95.toFixed(4)} g`);
    }
  });

  it('a slow ripple on a short coarse phase: p95 within 0.025 g once learned, no dose beyond 0.04 g (the coarse landing margin counts the ripple scaled from the fine one)', () => {
    // 7.3 % at 0.6 Hz, a coarse phase of about one second: too short to show its ripple, whose swing over it moves the
    // coarse landing by twice the coarse amplitude; the fine ramp shows it (scaled by the flows: the ripple is a share of
    // the flow). The controller before these changes: max 0.025-0.045 g. The p95, not the max, holds the 0.025 g: the
    // reading noise (0.026 g sigma, 0.005 g on the settled mean) and the delay jitter (+-6 ms at 1.9 g/s fine flow)
    // put single doses of a good controller past 0.025 g now and then (0.027 and 0.035 g once in 35 with seeds 1 and 2
    // after a change that moved nothing in the steady doses but the random draws). Since the coarse flow fit waits for
    // that scaled ripple too (the next test), seed 2's p95 is 0.026 g (0.023 before): the test asks for the issue's
    // 0.03 g bound on this plant
    for (const seed of [1, 2, 3]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ coarseGps: 21.5, delayS: 0.43, jitterS: 0.006, ripple: 0.073, rippleHz: 0.6, noiseG: 0.026, lagS: 0.053, deadBand: 14, driftPerMin: 0, seed });
      const errs = absErrors(c, plant, 25.3, 40, 5);
      const p95 = p95Of(errs);
      assert.ok(p95 <= 0.03, `seed ${seed}: p95 ${p95.toFixed(3)} g`);
      assert.ok(Math.max(...errs) <= 0.04, `seed ${seed}: max ${Math.max(...errs).toFixed(3)} g`);
    }
  });

  it('a strong slow ripple on a fast, short coarse phase: the coarse flow fit waits for the ripple the fine ramp showed (seed-7 p04\'s physics)', () => {
    // 48 g/s, 9.8 % at 0.6 Hz: the coarse phase (1.1-1.3 s) is shorter than a period, so the coarse ramp never shows
    // one and its amplitude was taken as 0. The line fitted over the last 0.3-0.5 s of it read the ripple's slope as
    // the flow, and the coarse landing swung by grams: before this change p95 0.15-0.27 g (mean 0.19) over these seeds,
    // 0.05-0.11 g (mean 0.07) with it, 0.046-0.073 g (mean 0.061) with this stop's later changes. The fine ramp's ripple, scaled by the flows, now keeps the learned flow (and the
    // landed mass) in charge until the fit is long enough for it.
    const { p95s, mean } = p95PerSeed([1, 2, 3, 4], { coarseGps: 48.4, delayS: 0.52, jitterS: 0.012, ripple: 0.098, rippleHz: 0.6, noiseG: 0.005, lagS: 0.087, deadBand: 25, driftPerMin: 0 }, 77.4, 40, 10);
    assert.ok(Math.max(...p95s) <= 0.12 && mean <= 0.09, `p95 per seed ${p95s.map((v) => v.toFixed(3)).join(', ')} g, mean ${mean.toFixed(3)}`);
  });

  it('a fast ripple on a motor that coasts: the ripple model lands the coast with the ripple it carries, not as more of the ramp', () => {
    // 14 % at 2 Hz with a 200 ms lag (w x lag = 2.5): the coast after the stop lands the flow x its length, as more of the
    // ramp would, but the ripple on it is filtered by the speed's decay. Cut as if the ramp went on for the whole in-flight
    // time, the ripple's share of the landed mass was placed with the wrong phase: p95 0.011-0.014 g over these seeds
    // before this change (mean 0.0125), 0.0076-0.0082 g with it.
    const { p95s, mean } = p95PerSeed([1, 2, 3], { coarseGps: 10, delayS: 0.6, jitterS: 0.001, ripple: 0.14, rippleHz: 2, noiseG: 0.003, lagS: 0.2, deadBand: 10, driftPerMin: 0 }, 50, 40, 10);
    assert.ok(Math.max(...p95s) <= 0.011 && mean <= 0.010, `p95 per seed ${p95s.map((v) => v.toFixed(4)).join(', ')} g, mean ${mean.toFixed(4)}`);
  });

  it('coastVerdict: the landed masses follow the coast\'s filter (1), or the plain ramp (2); too few, too noisy or too alike decides nothing (0)', () => {
    // a seeded spread of phases: d = the coast's difference from the plain model, e = the landed mass less the plain one
    const rnd = (() => {
      let x = 7;
      return () => ((x = (x * 48271) % 2147483647) / 2147483647) * 2 - 1;
    })();
    const pairs = (n: number, amp: number, slope: number, noise: number, offset = 3): Array<[number, number]> =>
      Array.from({ length: n }, (_, i) => {
        const d = amp * Math.sin(i * 2.4);
        return [d, slope * d + offset + noise * rnd()];
      });
    assert.equal(coastVerdict(pairs(12, 2, 1, 0.3), 0.5), 1, 'fixed frequency: e follows d');
    assert.equal(coastVerdict(pairs(12, 2, 0, 0.3), 0.5), 2, 'following the speed: e stays at the noise');
    assert.equal(coastVerdict(pairs(7, 2, 1, 0.3), 0.5), 0, 'fewer than 8 doses');
    assert.equal(coastVerdict(pairs(12, 0.1, 1, 0.01), 0.5), 0, 'the two ways do not differ by more than the noise');
    assert.equal(coastVerdict(pairs(12, 1, 1, 3), 0.5), 0, 'the slope\'s standard error is too large to tell');
    assert.equal(coastVerdict(pairs(16, 2, 0.5, 0.3), 0.5), 0, 'a slope of 1/2 decides nothing');
  });

  it('a ripple that follows the motor\'s speed is never taken as filtered by the coast (p23\'s physics, the ripple per auger turn)', () => {
    // With no dead band such a ripple lands in the coast exactly as the plain model says; the filter made it worse than
    // ignoring the ripple. Over 60 doses on 5 seeds the controller decides "as the ramp" (seeds 1 and 4, after 37 and 53
    // doses: the tau jitter's scatter is about the size of the two ways' difference) or nothing, never "filtered".
    const ways: number[] = [];
    for (const seed of [1, 2, 3, 4, 5]) {
      const c = new DosingController({ toleranceCg: 10 });
      absErrors(c, new Plant({ coarseGps: 13.1, delayS: 0.72, jitterS: 0.007, ripple: 0.127, rippleHz: 25, rippleFollowsSpeed: true, noiseG: 0.003, lagS: 0.19, deadBand: 0, driftPerMin: 0, seed }), 21.9, 60, 0);
      ways.push(c.learned.coastWay ?? 0);
    }
    assert.ok(!ways.includes(1) && ways.includes(2), `ways per seed: ${ways.join(', ')}`);
  });

  it('the coarse ripple\'s period is not taken for the fine one when the fine ramps show none of it (a ripple that follows the speed; p17\'s physics)', () => {
    // 10.8 % at 1.3 Hz at full speed, 28.9 g/s, 176 g: the coarse ramp shows the 0.77 s period. Taken at fine speed (a
    // fixed frequency) it was cut with on every dose, though one that follows the speed is 10x slower there (7.7 s).
    const p17 = P17;
    const seeds = [1, 2, 3, 4];
    const state = (c: DosingController): string => {
      const priv = c as unknown as { ripplePeriod(): number };
      const L = c.learned;
      return `not at fine ${L.coarseNotAtFine} cut with ${priv.ripplePeriod() === L.ripplePeriodUs && L.ripplePeriodUs > 0 ? 'coarse' : 'own'} shown ${String(learnedPayload(L).fine_ripple_from)}`;
    };
    const follows: string[] = [];
    const fs = p95PerSeed(seeds, { ...p17, rippleFollowsSpeed: true }, 176, 30, 10, (c) => follows.push(state(c)));
    const fixed: string[] = [];
    const fx = p95PerSeed(seeds, p17, 176, 30, 10, (c) => fixed.push(state(c)));
    // and the result shows it (learned.fine_ripple_from)
    assert.deepEqual(follows, seeds.map(() => 'not at fine 2 cut with own shown not_at_fine'), 'follows the speed');
    assert.deepEqual(fixed, seeds.map(() => 'not at fine 0 cut with coarse shown fine_ramp'), 'a fixed frequency: the fine ramp shows the coarse period');
    // the rule itself, on each dose's fine ramp long enough for it (2.3 coarse periods): never "absent" for the fixed
    // frequency (its fine period is found at once, so the controller does not ask; asked here), and for the one that
    // follows the speed "absent" on such ramps
    const verdicts = (plantP: PlantParams): { asked: number; absent: number } => {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant(plantP);
      const priv = c as unknown as { coarseAbsentAtFine(cp: number, fromUs: number): boolean; rippleFromUs: number; rfit: RippleFit };
      let asked = 0;
      let absent = 0;
      for (let k = 0; k < 30; k++) {
        absErrors(c, plant, 176, 1, 0);
        const cp = c.learned.ripplePeriodUs;
        if (cp <= 0 || priv.rippleFromUs <= 0 || (priv.rfit.newestUs - priv.rippleFromUs) * 10 < 23 * cp) continue;
        asked++;
        if (priv.coarseAbsentAtFine(cp, priv.rippleFromUs)) absent++;
      }
      return { asked, absent };
    };
    for (const seed of seeds) {
      const fixedV = verdicts({ ...p17, seed });
      assert.ok(fixedV.asked >= 10 && fixedV.absent === 0, `seed ${seed}, a fixed frequency: ${JSON.stringify(fixedV)}`);
      const followsV = verdicts({ ...p17, rippleFollowsSpeed: true, seed });
      assert.ok(followsV.asked >= 2 && followsV.absent >= followsV.asked / 2, `seed ${seed}, following the speed: ${JSON.stringify(followsV)}`);
    }
    // doses 11-30, mean p95 of the 4 seeds: following the speed 0.194 g before, 0.084 g with it; a fixed frequency 0.043 g both
    assert.ok(fs.mean <= 0.12, `follows the speed: p95 per seed ${fs.p95s.map((v) => v.toFixed(3)).join(', ')}`);
    assert.ok(fx.mean <= 0.06, `a fixed frequency: p95 per seed ${fx.p95s.map((v) => v.toFixed(3)).join(', ')}`);
  });

  it('a fixed-frequency ripple on a coarse ramp too short for its period is filtered by the coast before its way is learned, told by the swings (p23\'s physics)', () => {
    // 12.7 % at 2.5 Hz, 13.1 g/s for a 21.9 g target: the coarse ramp after the spin-up is too short to show a period, so
    // the two ramps' periods cannot be compared, and the coast's own learning decides on only half of these seeds in 50 doses.
    // The coarse swing (about 10x the fine one here, as the flows) tells a fixed frequency from a ripple that follows the
    // speed (1x), measured about the fitted spin-up (the coarse line's residual holds the spin-up's curve: 18 cg for a
    // ripple of 1 cg that follows the speed). Before this the ripple was landed as the ramp's on the seeds whose way was
    // not learned in 50 doses (4 of these 8): p95 per seed 0.028, 0.027, 0.093, 0.034, 0.027, 0.026, 0.044, 0.034 g (mean
    // 0.039); with it 0.028, 0.024, 0.038, 0.049, 0.025, 0.027, 0.027, 0.027 g (mean 0.031).
    const p23 = { coarseGps: 13.1, delayS: 0.72, jitterS: 0.007, ripple: 0.127, noiseG: 0.003, lagS: 0.19, deadBand: 6, driftPerMin: 0 };
    const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
    // (read after `learned`, which finishes the last dose's learning; the swing and the fine ripple measured, so the
    // verdict is the swings' own)
    const verdict = (c: DosingController): string => {
      const L = c.learned;
      const priv = c as unknown as { coastFits(): boolean; rippleKind(): number };
      return `kind ${priv.rippleKind()} filtered ${priv.coastFits()} measured ${(L.coarseSwingCg ?? -1) >= 0 && (L.fineRipplePeriodUs ?? 0) > 0}`;
    };
    const fixed: string[] = [];
    const following: string[] = [];
    const { p95s, mean } = p95PerSeed(SEEDS, { ...p23, rippleHz: 2.5 }, 21.9, 50, 10, (c) => fixed.push(verdict(c)));
    for (const seed of [1, 2, 3, 4]) {
      const c = new DosingController({ toleranceCg: 10 });
      absErrors(c, new Plant({ ...p23, rippleHz: 25, rippleFollowsSpeed: true, seed }), 21.9, 20, 0);
      following.push(verdict(c));
    }
    assert.ok(mean <= 0.034, `p95 per seed ${p95s.map((v) => v.toFixed(4)).join(', ')} g, mean ${mean.toFixed(4)}`);
    assert.deepEqual(fixed, SEEDS.map(() => 'kind 1 filtered true measured true'), 'a fixed frequency, filtered by the prior');
    assert.deepEqual(following, [1, 2, 3, 4].map(() => 'kind 2 filtered false measured true'), 'a ripple that follows the speed, landed as the ramp');
  });

  it('a ripple that follows the speed, slower than 2.5 s at fine speed, is found at its period when a long ramp shows 3 of them (p23\'s physics)', () => {
    // 12.7 % at 2.5 Hz at full speed, one per auger turn: 4.0 s at the fine duty, a swing of about 0.1 g. The wide search
    // stopped at 2.5 s and took a wrong period of 2.0-2.5 s that the ripple model then cut with: p95 per seed 0.184, 0.208
    // and 0.200 g before this change, 0.037, 0.043 and 0.042 g with it (preact: about 0.15 g on this plant).
    const plant = { coarseGps: 13.1, delayS: 0.72, jitterS: 0.007, ripple: 0.127, rippleHz: 2.5, rippleFollowsSpeed: true, noiseG: 0.003, lagS: 0.19, deadBand: 6, driftPerMin: 0 };
    const periods: number[] = [];
    const { p95s, mean } = p95PerSeed([1, 2, 3], plant, 21.9, 40, 10, (c) => periods.push(c.learned.fineRipplePeriodUs ?? 0));
    assert.ok(periods.every((p) => Math.abs(p - 4_000_000) <= 200_000), `periods ${periods.join(', ')} us`);
    assert.ok(Math.max(...p95s) <= 0.1 && mean <= 0.08, `p95 per seed ${p95s.map((v) => v.toFixed(4)).join(', ')} g, mean ${mean.toFixed(4)}`);
  });

  it('a ripple slower than one dose\'s fine ramp is found across doses, and the model then cuts with its phase (p03\'s physics)', () => {
    // 2.1 % at 0.8 Hz: the coarse phase (0.9 s) is shorter than a period and the steady fine ramp (about 2.5 s) shorter
    // than the 3 periods the search of one dose asks; the ripple moves the in-flight mass by about a reading's noise.
    // Before the search across doses no seed found the period and the p95 over seeds 1-6 were 0.042, 0.034, 0.045, 0.037,
    // 0.061 and 0.033 g (mean 0.042); with it 5 of the 6 find it and the mean is 0.030 g. Seed 2 agrees on 1.0 s (its
    // candidates scatter from 0.73 to 1.3 s): no worse than before, and why the test asks for 4 of 6.
    let found = 0;
    const { p95s, mean } = p95PerSeed([1, 2, 3, 4, 5, 6], { coarseGps: 29.7, delayS: 0.6, jitterS: 0.016, ripple: 0.021, rippleHz: 0.8, noiseG: 0.01, lagS: 0.123, deadBand: 52, driftPerMin: 0 }, 32.6, 40, 10, (c) => {
      if (Math.abs((c.learned.fineRipplePeriodUs ?? 0) - 1_250_000) <= 75_000) found++;
    });
    assert.ok(found >= 4, `period found on ${found} of 6 seeds`);
    assert.ok(mean <= 0.033, `p95 per seed ${p95s.map((v) => v.toFixed(4)).join(', ')} g, mean ${mean.toFixed(4)}`);
  });

  it('a wrong fine ripple period learned earlier is replaced once long fine ramps show another one clearly, in 2 doses in a row', () => {
    // 14 % at 0.51 Hz (1.96 s): the benchmark's seed-3 p13 learned 1.31 s from short ramps first, and a known period was
    // only ever refined within 15 % of itself, so it stayed (p95 0.30 g over 100 doses). Here the station starts with that
    // wrong period stored; before this change it kept it through all 30 doses (mean |error| of the last 10: 0.12-0.17 g).
    for (const seed of [1, 2, 3]) {
      const wrong = { version: 1, fineRipplePeriodUs: 1_306_588, fineRippleCg: 7 } as unknown as LearnedPlant;
      const c = new DosingController({ toleranceCg: 10 }, wrong);
      const plant = new Plant({ coarseGps: 41.85, delayS: 0.226, jitterS: 0.0097, ripple: 0.14, rippleHz: 0.51, noiseG: 0.0226, lagS: 0.094, deadBand: 35, driftPerMin: 0, seed });
      const errs = absErrors(c, plant, 128.4, 30, 20);
      const P = c.learned.fineRipplePeriodUs ?? 0;
      assert.ok(Math.abs(P - 1_960_784) <= 98_000, `seed ${seed}: period ${P} us`);
      const mean = errs.reduce((a, b) => a + b, 0) / errs.length;
      assert.ok(mean <= 0.06, `seed ${seed}: mean |error| of the last 10 doses ${mean.toFixed(3)} g`);
    }
  });

  it('a known fine ripple period that the search finds at the edge of its window moves all the way, to the wide search\'s period when that one lies beyond', () => {
    // The station starts with 1.6 s stored for a 1.96 s ripple (within the 15 % window the refinement searches, so the
    // rival check does not apply to it). Before this change the search's best, at the window's edge (1.84 s), moved it by a
    // quarter per dose: after 2 doses 1.66-1.73 s, and on seed 1 still 1.92 s after 12. Now it is 1.96 s after the first.
    for (const seed of [1, 2, 3, 4]) {
      const c = new DosingController({ toleranceCg: 10 }, { version: 1, fineRipplePeriodUs: 1_600_000, fineRippleCg: 7 } as unknown as LearnedPlant);
      const plant = new Plant({ coarseGps: 41.85, delayS: 0.226, jitterS: 0.0097, ripple: 0.14, rippleHz: 0.51, noiseG: 0.0226, lagS: 0.094, deadBand: 35, driftPerMin: 0, seed });
      absErrors(c, plant, 128.4, 2, 0);
      const P = c.learned.fineRipplePeriodUs ?? 0;
      assert.ok(Math.abs(P - 1_960_784) <= 60_000, `seed ${seed}: period ${P} us after 2 doses`);
    }
  });

  it('a slow ripple\'s period read short on the first long fine ramp is refined on the shorter ramps of later doses (seed-4 p06\'s physics)', () => {
    // 11.2 % at 0.6 Hz (1.667 s): the first doses' long fine ramps read 1.51-1.58 s, and a period of its own was refined
    // only on ramps of 3 periods (5 s), which the warm doses never have: it stayed for good (after 14 doses 1.51, 1.58 and
    // 1.60 s on these seeds; p95 0.128, 0.070 and 0.052 g). Refined on ramps of 2 periods: 1.66 s, p95 0.013-0.034 g.
    for (const seed of [1, 2, 5]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ coarseGps: 24.6, delayS: 0.56, jitterS: 0.005, ripple: 0.112, rippleHz: 0.6, noiseG: 0.013, lagS: 0.133, deadBand: 17, driftPerMin: 0, seed });
      const p95 = p95Of(absErrors(c, plant, 87.3, 30, 5));
      const P = c.learned.fineRipplePeriodUs ?? 0;
      assert.ok(Math.abs(P - 1_666_667) <= 50_000, `seed ${seed}: period ${P} us after 30 doses`);
      assert.ok(p95 <= 0.045, `seed ${seed}: p95 ${p95.toFixed(3)} g`);
    }
  });

  it('a fine period agreed across doses that a ramp of 2 of its periods shows to be a curve is dropped (a station that stored an edge period; p17\'s physics, the ripple following the speed)', () => {
    // Before the searches refused edge periods, a ripple that follows the speed (7.7 s at fine speed here) was agreed at
    // the edge of the search across doses, about 2 s, and stored; found in review. Kept, doses 11-40 had p95 1.006 g
    // (seed 1); dropped: 0.100 and 0.082 g on these seeds.
    const p17 = { ...P17, rippleFollowsSpeed: true };
    for (const seed of [1, 2]) {
      const plant = new Plant({ ...p17, seed });
      const warm = new DosingController({ toleranceCg: 10 });
      absErrors(warm, plant, 176, 10, 0);
      const stored: LearnedPlant = { ...warm.learned, fineRipplePeriodUs: 1_950_000, fineRippleCg: 30, fineRippleAcrossDoses: true };
      const c = new DosingController({ toleranceCg: 10 }, JSON.parse(JSON.stringify(stored)) as LearnedPlant);
      const p95 = p95Of(absErrors(c, plant, 176, 40, 10));
      const P = c.learned.fineRipplePeriodUs ?? 0;
      assert.ok(Math.abs(P - 1_950_000) > 200_000 && p95 <= 0.25, `seed ${seed}: period ${P} us after 40 doses, p95 ${p95.toFixed(3)} g`);
    }
  });

  it('the coast checks, the way learned from them, the coarse swing and the coarse period\'s absence at fine survive a store and reload; malformed ones are dropped', () => {
    const stored = { version: 1, recentCoastCheck: [[0.5, 0.4], [-0.3, -0.2]], coastWay: 1, coarseSwingCg: 7, coarseNotAtFine: 2, coarseNotAtFineUs: 770_000 } as unknown as LearnedPlant;
    const c = new DosingController({ toleranceCg: 10 }, JSON.parse(JSON.stringify(stored)) as LearnedPlant);
    assert.deepEqual(c.learned.recentCoastCheck, [[0.5, 0.4], [-0.3, -0.2]]);
    assert.equal(c.learned.coastWay, 1);
    assert.equal(c.learned.coarseSwingCg, 7);
    assert.equal(c.learned.coarseNotAtFine, 2);
    assert.equal(c.learned.coarseNotAtFineUs, 770_000);
    const bad = new DosingController({ toleranceCg: 10 }, { version: 1, recentCoastCheck: [[0.5], [1, 'x'], [NaN, 1], [0.2, -0.1], 'no'], coastWay: -1, coarseSwingCg: 'x', coarseNotAtFine: -1, coarseNotAtFineUs: 'x' } as unknown as LearnedPlant);
    assert.deepEqual(bad.learned.recentCoastCheck, [[0.2, -0.1]]);
    assert.equal(bad.learned.coastWay, 0);
    assert.equal(bad.learned.coarseSwingCg, -1, 'not measured');
    assert.equal(bad.learned.coarseNotAtFine, 0);
    assert.equal(bad.learned.coarseNotAtFineUs, 0);
    assert.equal(new DosingController({ toleranceCg: 10 }).learned.coarseSwingCg, -1, 'a fresh station has not measured it');
  });

  it('the search across doses\' candidates survive a store and reload (JSON), and `learned` is a copy of them', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ coarseGps: 29.7, delayS: 0.6, jitterS: 0.016, ripple: 0.021, rippleHz: 0.8, noiseG: 0.01, lagS: 0.123, deadBand: 52, driftPerMin: 0, seed: 1 });
    absErrors(c, plant, 32.6, 4, 0);
    const stored = c.learned;
    const cands = stored.recentShortRipples ?? [];
    assert.ok(cands.some((x) => x !== null), `candidates: ${JSON.stringify(cands)}`);
    const reloaded = new DosingController({ toleranceCg: 10 }, JSON.parse(JSON.stringify(stored)) as LearnedPlant);
    assert.deepEqual(reloaded.learned.recentShortRipples, cands);
    const before = JSON.stringify(cands);
    absErrors(c, plant, 32.6, 2, 0);
    assert.equal(JSON.stringify(stored.recentShortRipples), before, 'a learned snapshot does not change with later doses');
  });

  it('agreedRipple: 4 of the last 6 doses must agree on the period, at phases spread over it (a transient repeats its phase)', () => {
    const at = (periodUs: number, deg: number, ampCg = 3): ShortRipple => ({ periodUs, ampCg, ux: Math.cos((deg * Math.PI) / 180), uy: Math.sin((deg * Math.PI) / 180) });
    assert.deepEqual(agreedRipple([at(1_000_000, 10), null, at(1_060_000, 130), at(960_000, 250), at(700_000, 40), at(1_020_000, 300)]), { periodUs: 1_010_000, ampCg: 3 });
    // three agree: not enough
    assert.equal(agreedRipple([at(1_000_000, 10), null, at(1_040_000, 130), at(700_000, 250), at(980_000, 40), null]), null);
    // four agree at one phase from the ramp's start: the same transient in every dose
    assert.equal(agreedRipple([at(1_000_000, 10), at(1_020_000, 15), at(990_000, 5), at(1_010_000, 20), null, null]), null);
    // more than 8 % off the median is not counted
    assert.equal(agreedRipple([at(1_000_000, 10), at(1_100_000, 130), at(900_000, 250), at(1_000_000, 40)]), null);
    // a ripple under 1 cg at fine speed is left to the line
    assert.equal(agreedRipple([at(1_000_000, 10, 0), at(1_000_000, 130, 0), at(1_000_000, 250, 1), at(1_000_000, 40, 0)]), null);
  });

  it('jointRipple: the sum of the last doses\' fits finds a period none resolves alone; refused on noise, on 3 doses, on phases that line up, and on a curve', () => {
    const n = JOINT_GRID_US.length;
    const noise = seededNoise(7);
    // one dose's record: noise alone gives z about 2 at every period (a chi-square of 2), a ripple a peak of height h at
    // periodUs whose width is that of a ramp of 2 periods; hiUs: the longest period this ramp resolves
    const rec = (periodUs: number, h: number, deg: number, hiUs = 2_500_000, curve = 0, early = false): JointRecord => {
      const r: JointRecord = { z: new Float64Array(n).fill(NaN), zLate: new Float64Array(n).fill(NaN), ux: new Float64Array(n), uy: new Float64Array(n), amp: new Float64Array(n) };
      for (let g = 0; g < n; g++) {
        const p = JOINT_GRID_US[g];
        if (p > hiUs) continue;
        const df = (1e6 / p - 1e6 / periodUs) * ((2 * periodUs) / 1e6); // frequency offset in units of 1 / ramp
        r.z[g] = 2 + noise() / 2 + h / (1 + 4 * df * df) + (curve * p) / hiUs;
        // the ramp's second half: the same ripple with half the samples, unless the ripple is only at the ramp's start
        r.zLate[g] = 2 + noise() / 2 + (early ? 0 : h / 2 / (1 + df * df)) + (curve * p) / hiUs;
        r.ux[g] = Math.cos(((deg + 37 * g) * Math.PI) / 180);
        r.uy[g] = Math.sin(((deg + 37 * g) * Math.PI) / 180);
        r.amp[g] = 1.5;
      }
      return r;
    };
    // each dose alone: a peak of 12 over the noise at 1 s; none is past what noise alone reaches in one dose, together they are
    const spread = [10, 130, 250, 40, 300, 190].map((deg) => rec(1_000_000, 12, deg));
    const found = jointRipple(spread);
    assert.ok(found && Math.abs(found.periodUs - 1_000_000) <= 20_000 && found.ampCg === 2, JSON.stringify(found));
    assert.equal(jointRipple(spread.slice(0, 3)), null, 'three doses are not enough');
    assert.equal(jointRipple([10, 130, 250, 40, 300, 190].map((deg) => rec(1_000_000, 0, deg))), null, 'noise alone');
    // the same phase from the ramp's start in every dose (at every period, as a transient at one place of the ramp)
    const aligned = [10, 12, 8, 11, 9, 10].map((deg) => {
      const r = rec(1_000_000, 12, deg);
      r.ux.fill(Math.cos((deg * Math.PI) / 180));
      r.uy.fill(Math.sin((deg * Math.PI) / 180));
      return r;
    });
    assert.equal(jointRipple(aligned), null, 'a transient');
    // a curve (a ripple far slower than the ramps): z grows up to the longest period each ramp resolves, no peak
    const curve = [1_300_000, 1_400_000, 1_350_000, 1_500_000, 1_450_000, 1_300_000].map((hi, i) => rec(1_000_000, 0, 60 * i, hi, 40));
    assert.equal(jointRipple(curve), null, 'a curve');
    // a period only at the ramps' start (what the coarse tail brings where the ripple follows the speed)
    assert.equal(jointRipple([10, 130, 250, 40, 300, 190].map((deg) => rec(1_000_000, 12, deg, 2_500_000, 0, true))), null, 'only at the start');
  });

  it('a ripple about as large as the reading noise, on fine ramps of 2 of its periods, is found across doses; where the ripple follows the speed, the coarse tail\'s period is not taken (p15\'s physics)', () => {
    // 4.9 % at 1.01 Hz, 22.35 g/s, reading noise 29 mg: at fine speed the ripple swings +-12 mg. Each dose's ramp alone put
    // its period anywhere in 0.7-1.35 s: 4 of 6 doses agreeing within 8 % came at dose 39, 36 and 29 on 3 of these 7
    // seeds (1014 is the benchmark's) and not in 40 doses on the 4 others (mean p95 of doses 11-40: 0.0465 g); the sum
    // of the doses' fits (jointRipple) finds it on 6 of them, at doses 35, 6, 31, 36, 19 and 29 (0.0421 g)
    const p15: Omit<PlantParams, 'seed'> = { coarseGps: 22.35, delayS: 0.418, jitterS: 0.0192, ripple: 0.049, rippleHz: 1.01, noiseG: 0.0291, lagS: 0.174, deadBand: 33, driftPerMin: 0 };
    const seeds = [1014, 1, 2, 3, 4, 5, 6];
    const found: string[] = [];
    const p95s: number[] = [];
    for (const seed of seeds) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ ...p15, seed });
      let at = 0;
      const errs: number[] = [];
      for (let k = 1; k <= 40; k++) {
        errs.push(...absErrors(c, plant, 56.7, 1, 0));
        const p = c.learned.fineRipplePeriodUs ?? 0;
        if (!at && p > 0 && Math.abs(p - 1e6 / 1.01) <= 0.05 * (1e6 / 1.01)) at = k;
      }
      p95s.push(p95Of(errs.slice(10)));
      found.push(`seed ${seed}: ${at ? `dose ${at}` : 'not found'}`);
    }
    assert.ok(found.filter((f) => !f.includes('not found')).length >= 6, found.join('; '));
    const mean = p95s.reduce((a, b) => a + b, 0) / p95s.length;
    assert.ok(mean <= 0.045, `p95 per seed ${p95s.map((v) => v.toFixed(3)).join(', ')}`);
    // following the speed, the fine ripple is 10x slower (about 14 s with the dead band): nothing under 2.5 s is at fine
    // speed, but the coarse tail lands its 1 s ripple at the start of every fine ramp; summed, without asking the ramps'
    // second halves, it was taken (1.04-1.55 s) and cut with: p95 of doses 11-60 0.089 -> 0.126 g (seeds 1-6), and with
    // half the margin there still on some seeds (0.081 -> 0.086 g over 100 doses with drift)
    const taken: string[] = [];
    for (const seed of seeds.slice(0, 4)) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ ...p15, rippleFollowsSpeed: true, seed });
      for (let k = 1; k <= 30; k++) {
        absErrors(c, plant, 56.7, 1, 0);
        const p = c.learned.fineRipplePeriodUs ?? 0;
        if (p > 0 && p < 2_500_000) taken.push(`seed ${seed} dose ${k}: ${p} us`);
      }
    }
    assert.deepEqual(taken, []);
  });

  it('the max dose time follows the measured flow by default: a 420 g dose at 6.5 g/s (over a minute of coarse) is not cut at 60 s', () => {
    const plantP = { coarseGps: 6.5, delayS: 0.25, jitterS: 0.005, ripple: 0.05, rippleHz: 1, noiseG: 0.01, lagS: 0.1, deadBand: 10, driftPerMin: 0, seed: 4 };
    const auto = new DosingController({ toleranceCg: 10 });
    const plant = new Plant(plantP);
    for (let k = 0; k < 3; k++) {
      const { rec, trueG } = dose(auto, plant, 420);
      assert.notEqual(rec.result, 'aborted', `dose ${k}: ${rec.reason}`);
      assert.ok(rec.durationUs > 60_000_000, `dose ${k} took ${rec.durationUs} us`);
      if (k > 0) assert.ok(Math.abs(trueG - 420) <= 0.1, `dose ${k}: ${trueG} g`);
    }
    // a configured limit is kept as it is
    const fixed = new DosingController({ toleranceCg: 10, maxDoseUs: 60_000_000 });
    assert.equal(dose(fixed, new Plant(plantP), 420).rec.reason, 'max-time');
  });

  it('a weak ripple the model leaves alone: the line cut plans with the recent doses\' fine flow, not the short fit\'s slope, while the slope stays within their spread', () => {
    // 1.5 % at 0.6 Hz (about the reading noise at fine speed, so the ripple search leaves it to the line): the fine fit
    // sees a share of a period, and the in-flight time (0.7 s) that follows it another share. The fit's slope swings by
    // +-2 % from dose to dose and, planned with, moved the planned in-flight mass by what does not last: measured with
    // the controller before this change, planned sd 2.4-2.7 cg per seed and error sd 0.043 g (p95 0.077 g); with it
    // 1.3-1.5 cg and 0.026 g (p95 0.046 g). Planned with the recent median, it moves only with the learned in-flight time
    const sd = (a: number[]): number => {
      const m = a.reduce((x, y) => x + y, 0) / a.length;
      return Math.sqrt(a.reduce((x, y) => x + (y - m) * (y - m), 0) / a.length);
    };
    const all: number[] = [];
    for (const seed of [41, 42, 43]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ coarseGps: 35, delayS: 0.7, jitterS: 0.008, lagS: 0.15, deadBand: 30, ripple: 0.015, rippleHz: 0.6, noiseG: 0.008, driftPerMin: 0, seed });
      const planned: number[] = [];
      for (let k = 0; k < 40; k++) {
        const { rec, trueG } = dose(c, plant, 30);
        if (k >= 10) {
          planned.push(rec.predictedInflightCg);
          all.push(trueG - 30);
        }
      }
      assert.ok(sd(planned) <= 2, `seed ${seed}: planned in-flight mass sd ${sd(planned).toFixed(2)} cg`);
    }
    assert.ok(sd(all) <= 0.033, `error sd ${sd(all).toFixed(4)} g over 3 x 30 doses`);
  });

  it('the dead time is corrected for the onset threshold a lagging motor reaches late', () => {
    // the reading passes the onset threshold sqrt(2 lag thr / flow) after the material starts to land: uncorrected,
    // the dead time read 40 ms long here (and the lag, the in-flight time less it, as much short)
    for (const seed of [31, 32]) {
      const c = new DosingController({ toleranceCg: 10 });
      const plant = new Plant({ ...DEFAULT_PLANT, coarseGps: 20, delayS: 0.5, jitterS: 0.002, lagS: 0.15, ripple: 0, noiseG: 0.005, seed });
      for (let k = 0; k < 6; k++) dose(c, plant, 60);
      assert.ok(Math.abs(c.learned.delayUs - 500_000) <= 20_000, `seed ${seed}: dead time ${c.learned.delayUs} us (plant 500 ms)`);
    }
  });

  it('median/MAD learner: ignores a single outlier dose, adopts a confirmed change', () => {
    const c = new DosingController({ confirm: 3 });
    const learn = (inflightCg: number, rate: number): boolean => (c as unknown as { learn(a: number, b: number): boolean }).learn(inflightCg, rate);
    assert.equal(c.tau, 0, 'nothing known on a fresh station');
    for (const cg of [70, 71, 69, 70]) assert.equal(learn(cg, 200), true); // 0.35 s +- 5 ms
    assert.equal(c.tau, 350_000, 'the median');
    assert.ok(c.learned.jitterUs > 0 && c.learned.jitterUs < 10_000, `jitter ${c.learned.jitterUs}`);
    assert.equal(learn(200, 200), false, 'a 1 s in-flight is an outlier');
    assert.equal(c.tau, 350_000);
    assert.equal(learn(120, 200), false);
    assert.equal(learn(120, 200), false);
    assert.equal(c.tau, 350_000, 'outliers do not move tau');
    assert.equal(learn(120, 200), true);
    assert.equal(c.tau, 600_000, 'three agreeing outliers are a real change');
    assert.equal(c.learned.outliers, 4);
    // an older station's bare tau is a prior
    assert.equal(new DosingController({}, 420_000).tau, 420_000);
    assert.equal(new DosingController({}, 0).tau, 0);
  });

  it('a motor dead band above the fine duty (15 % against 10 %): a cold start raises the fine duty until material flows, and doses', () => {
    // before: nothing flowed at the probe's fine duty, and every dose was aborted as no-progress (the raise only
    // happened once a fine ramp had been fitted, which never came)
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ coarseGps: 20, delayS: 0.35, jitterS: 0.005, ripple: 0.03, rippleHz: 2, noiseG: 0.01, lagS: 0.08, deadBand: 150, driftPerMin: 0, seed: 3 });
    const first = dose(c, plant, 50);
    assert.notEqual(first.rec.result, 'aborted', String(first.rec.reason));
    assert.equal(c.learned.fineDuty, 200, 'raised in 5 % steps to the first duty that flows');
    for (let k = 0; k < 6; k++) {
      const { rec, trueG } = dose(c, plant, 50);
      assert.equal(rec.result, 'ok', `dose ${k + 2}: ${rec.result} ${rec.reason ?? ''}`);
      assert.ok(Math.abs(trueG - 50) <= 0.1, `dose ${k + 2}: ${trueG} g`);
    }
  });

  it('a fine duty that flowed before and gives nothing from rest is a jam: no-progress, the duty is not raised', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, seed: 4 });
    for (let k = 0; k < 3; k++) dose(c, plant, 50);
    const duty = c.learned.fineDuty;
    plant.jammed = true;
    const { rec } = dose(c, plant, 1); // 1 g: at fine speed from rest
    assert.equal(rec.reason, 'no-progress');
    assert.equal(c.learned.fineDuty, duty);
    assert.ok(rec.durationUs <= 5_000_000, `aborted after ${rec.durationUs} us`);
  });

  /** A coarse spin-up from rest on a plant, sampled at 80 SPS for `spanS`: (time since the motor start, net). */
  function spinUp(pp: Partial<PlantParams>, spanS: number): { t: number[]; w: number[]; onsetUs: number } {
    const plant = new Plant({ ...DEFAULT_PLANT, ...pp });
    const t: number[] = [];
    const w: number[] = [];
    plant.setDuty(1000, 0);
    let onsetUs = 0;
    for (let us = PERIOD_US; us <= spanS * 1e6; us += PERIOD_US) {
      plant.advance(us);
      const cg = plant.readCg();
      t.push(us);
      w.push(cg);
      // as the controller sees it: the first of 3 readings in a row above 6 x the noise
      const k = w.length;
      if (onsetUs === 0 && k >= 3 && w.slice(k - 3).every((v) => v > Math.max(5, 6 * (pp.noiseG ?? 0.01) * 100))) onsetUs = t[k - 3];
    }
    return { t, w, onsetUs };
  }
  /** The fitted lag (us) when trusted against the residual and the given coarse ripple (cg), else 0. */
  function fitLag(s: { t: number[]; w: number[]; onsetUs: number }, rippleCg = 0): number {
    const job = fitSpinUpJob(s.t, s.w, s.t.length, s.onsetUs);
    for (;;) {
      const r = job.next();
      if (r.done) return r.value && trustedLag(r.value, rippleCg) ? r.value.lagUs : 0;
    }
  }

  it('fitSpinUpJob: the motor lag from a coarse spin-up (first-order model, dead time and dead band), not from where a line crosses zero', () => {
    for (const [lagS, seed] of [[0.05, 1], [0.12, 2], [0.2, 3], [0.35, 4]] as const) {
      const s = spinUp({ coarseGps: 30, delayS: 0.45, lagS, deadBand: 40, ripple: 0.03, rippleHz: 2.2, noiseG: 0.01, seed }, 2.2);
      const got = fitLag(s);
      assert.ok(Math.abs(got - lagS * 1e6) <= Math.max(25_000, lagS * 1e6 * 0.15), `lag ${lagS * 1000} ms: fitted ${got / 1000} ms`);
    }
    // a ramp too short after its onset tells no lag
    assert.equal(fitLag(spinUp({ coarseGps: 30, delayS: 0.45, lagS: 0.2, seed: 5 }, 0.8)), 0);
    // a strong slow ripple over the spin-up (14 % at 0.5 Hz, 1.8 g on the weight) is taken up by the lag term: not trusted
    // once the ripple is known
    const rippled = spinUp({ coarseGps: 41.85, delayS: 0.226, lagS: 0.094, ripple: 0.14, rippleHz: 0.51, noiseG: 0.0226, seed: 6 }, 2.5);
    assert.equal(fitLag(rippled, Math.round((0.14 * 4185) / (2 * Math.PI * 0.51))), 0);
  });

  it('trustedLag: the mass the lag holds back must be 12 times the residual and the known ripple', () => {
    const fit = { lagUs: 200_000, flowCgPerS: 4000, rmsCg: 10 }; // holds back 800 cg
    assert.equal(trustedLag(fit, 0), true);
    assert.equal(trustedLag(fit, 60), true);
    assert.equal(trustedLag(fit, 70), false);
    assert.equal(trustedLag({ ...fit, rmsCg: 70 }, 0), false);
  });

  it('a long motor lag (200 ms) on a short coarse phase: the lag is fitted to the spin-up and the coarse line starts after it (seed 1 p03 of the benchmark)', () => {
    // before: the lag was the coarse in-flight time less the dead time, read short by a line that starts in the
    // spin-up (120-130 ms), so the next line started earlier still; the coarse flow read 5-10 % low, more landed than
    // planned and the fine phase ran out: p95 0.035-0.170 g over these seeds, mean 0.116 g. Now 0.026-0.111 g, mean
    // 0.050 g (bench: --seed 1 --only p03). The mean over the seeds holds it: one seed's p95 moves with its draws.
    const pp = { coarseGps: 40.2, delayS: 0.53, jitterS: 0.008, lagS: 0.2, deadBand: 55, ripple: 0.054, rippleHz: 2.4, noiseG: 0.025, driftPerMin: 0 };
    const { p95s, mean } = p95PerSeed([1, 2, 3, 4, 5, 6], pp, 52.2, 40, 10, (c, seed) => {
      const lag = c.learned.lagUs ?? 0;
      // (the dead band, 5.5 %, shapes the spin-up too: the fits read 160-255 ms)
      assert.ok(lag >= 140_000 && lag <= 280_000, `seed ${seed}: lag ${lag / 1000} ms`);
    });
    assert.ok(mean <= 0.075, `p95 per seed ${p95s.map((v) => v.toFixed(3)).join(', ')} g, mean ${mean.toFixed(3)}`);
  });

  it('a long lag on a plant without ripple: what the first warm coarse line left in its residuals does not refuse the lag fits (seed-6 p14 of the benchmark; a 300 ms lag at 10 g/s)', () => {
    // no ripple: the coarse ramp shows no period, but the first warm coarse line, started inside the spin-up, leaves
    // an amplitude in its residuals (80 cg on p14's physics). Counted as a ripple at coarse speed, it refused every right
    // fit for good, and the old estimate (in-flight time less the dead time, about half the lag) kept the coarse tail
    // short: seed-6 p14 0.124 g (bound 0.089, preact 0.066). A coarse amplitude without a period now counts up to 3x
    // the fit's own residual rms (a ripple that is there stays in the residual of the 4 s spin-up fit).
    const plants = [
      { pp: { coarseGps: 40.1, delayS: 0.29, jitterS: 0.016, lagS: 0.193, deadBand: 9, ripple: 0, rippleHz: 1, noiseG: 0.002, driftPerMin: 0 }, target: 104.6, lagUs: 193_000 },
      { pp: { coarseGps: 10, delayS: 0.4, jitterS: 0.005, lagS: 0.3, deadBand: 10, ripple: 0, rippleHz: 1, noiseG: 0.005, driftPerMin: 0 }, target: 20, lagUs: 300_000 },
    ];
    for (const { pp, target, lagUs } of plants) {
      for (const seed of [1, 2, 3]) {
        const c = new DosingController({ toleranceCg: 10 });
        const plant = new Plant({ ...pp, seed });
        for (let k = 0; k < 12; k++) dose(c, plant, target);
        const lag = c.learned.lagUs ?? 0;
        assert.ok(Math.abs(lag - lagUs) <= 0.15 * lagUs, `${pp.coarseGps} g/s, seed ${seed}: lag ${lag / 1000} ms (true ${lagUs / 1000}), coarse amplitude ${c.learned.rippleCg} cg`);
      }
    }
  });

  it('the fitted lags are stored with the plant: a JSON round trip keeps them, bad stored ones are dropped', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, lagS: 0.1, seed: 7 });
    for (let k = 0; k < 5; k++) dose(c, plant, 100);
    const stored = JSON.parse(JSON.stringify(c.learned)) as LearnedPlant;
    assert.ok((stored.recentLagUs ?? []).length >= 2 && (stored.lagUs ?? 0) > 0, JSON.stringify(stored.recentLagUs));
    const again = new DosingController({ toleranceCg: 10 }, stored);
    assert.deepEqual(again.learned.recentLagUs, stored.recentLagUs);
    assert.equal(again.learned.lagUs, stored.lagUs);
    const bad = new DosingController({ toleranceCg: 10 }, { ...stored, lagUs: -3, recentLagUs: [90_000, -1, 'x' as unknown as number, NaN, 110_000] });
    assert.deepEqual(bad.learned.recentLagUs, [90_000, 110_000]);
    // the lag in use is the stored fits' median (a stored lag of its own, or one beside a single fit, is not taken)
    assert.equal(bad.learned.lagUs, 100_000);
    const one = new DosingController({ toleranceCg: 10 }, { ...stored, lagUs: 1e12, recentLagUs: [120_000] });
    assert.equal(one.learned.lagUs, 0);
    const long = new DosingController({ toleranceCg: 10 }, { ...stored, recentLagUs: Array.from({ length: 1000 }, () => 90_000) });
    assert.equal(long.learned.recentLagUs?.length, 25);
    // learned is a copy
    (c.learned.recentLagUs ?? []).push(1);
    assert.deepEqual(c.learned.recentLagUs, stored.recentLagUs);
  });

  it('stop input: motor off in the same call, dose aborted', () => {
    const { c, plant } = fresh({}, {}, 350_000);
    const { rec } = dose(c, plant, 100, {
      onStep: (t) => {
        if (c.state === 'coarse' && t > 1_500_000) {
          assert.deepEqual(c.abort('stop', t), { duty: 0 });
        }
      },
    });
    assert.equal(rec.result, 'aborted');
    assert.equal(rec.reason, 'stop');
  });

  it('no progress (jam or empty hopper) on a station whose flows are not known: aborted after the fine duty was raised to its highest', () => {
    // nothing flowing from rest at a fine duty never seen flowing may be a motor dead band: the duty is doubled (10, 20,
    // 40, 50 %) with one onset wait each (2 s here), then it is a jam. A station whose duty flowed before aborts after
    // one wait (the next test); a jam at coarse speed within ~2 s (the test after it).
    const { c, plant } = fresh({}, {}, 350_000);
    plant.jammed = true;
    const duties: number[] = [];
    const { rec } = dose(c, plant, 100, { onDuty: (d) => duties.push(d) });
    assert.equal(rec.reason, 'no-progress');
    assert.ok(rec.durationUs < 9_000_000, `${rec.durationUs}`);
    assert.deepEqual(duties, [100, 200, 400, 500, 0]);
    // a raise that found no material is not kept: the next dose (the jam cleared) starts again at the configured duty
    assert.equal(c.learned.fineDuty, 100);
    plant.jammed = false;
    const next: number[] = [];
    const ok = dose(c, plant, 100, { onDuty: (d) => next.push(d) });
    assert.equal(ok.rec.result === 'aborted', false, String(ok.rec.reason));
    assert.equal(next[0], 100);
    assert.equal(c.learned.fineDuty, 100);
  });

  it('a raise whose dose aborts is not kept, even when a lump shaking loose from a jam was taken for the onset', () => {
    // (review of the dead-band change: the raised duty was kept at the onset, so this dose's 40 % stayed after the abort)
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, seed: 11 });
    plant.jammed = true;
    const duties: number[] = [];
    let lump = false;
    const r1 = dose(c, plant, 100, {
      onDuty: (d) => duties.push(d),
      onStep: (_t, p) => {
        if (!lump && duties.includes(400)) {
          lump = true;
          p.mass += 0.5;
        }
      },
    });
    assert.ok(lump, `duties ${duties.join(',')}`);
    assert.equal(r1.rec.result, 'aborted');
    assert.equal(r1.rec.learned.fineDuty, 100);
    assert.equal(c.learned.fineDuty, 100);
    plant.jammed = false;
    const d2: number[] = [];
    const r2 = dose(c, plant, 100, { onDuty: (d) => d2.push(d) });
    assert.equal(d2[0], 100);
    assert.equal(r2.rec.learned.fineDuty, 100);
  });

  it('a fine duty raised by 5 % on a fitted ramp (a worn motor) is kept when the ripple model cuts the dose, and a small dose from rest then runs', () => {
    // (review of the dead-band change: it was kept only on the line's path; every later dose raised again, and a 1 g dose
    // from rest was aborted as a jam, the old duty having a flow on record)
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, ripple: 0.1, rippleHz: 4, noiseG: 0.01, seed: 31, lagS: 0.05 });
    for (let k = 0; k < 7; k++) dose(c, plant, 60);
    (plant.p as { deadBand?: number }).deadBand = 110; // 10 % no longer turns the worn motor
    dose(c, plant, 60);
    const raised = c.learned.fineDuty;
    assert.ok(raised > 100, `fine duty ${raised}`);
    const later: number[] = [];
    dose(c, plant, 60, { onDuty: (d) => later.push(d) });
    assert.ok(!later.includes(100), `the next dose starts at the raised duty: ${later.join(',')}`);
    const small = dose(c, plant, 1);
    assert.notEqual(small.rec.result, 'aborted', String(small.rec.reason));
  });

  it('a dead band is never raised through above the coarse duty, and a fine speed under 0.05 % is not duty 0', () => {
    const c = new DosingController({ toleranceCg: 10, coarseDuty: 300, fineDuty: 100 });
    const plant = new Plant({ ...DEFAULT_PLANT, seed: 8 });
    plant.jammed = true;
    let top = 0;
    const { rec } = dose(c, plant, 100, { onDuty: (d) => (top = Math.max(top, d)) });
    assert.equal(rec.reason, 'no-progress');
    assert.equal(top, 300);
    assert.equal(c.learned.fineDuty, 100);
    // 0.04 % rounds to duty 0: it is 0.1 %, and a jam there still ends (raised to the highest fine duty, then no-progress)
    assert.equal(new DosingController({ fineDuty: 0.4 }).p.fineDuty, 1);
    assert.equal(new DosingController({ fineDuty: undefined as unknown as number }).p.fineDuty, DEFAULT_PARAMS.fineDuty);
    const z = new DosingController({ toleranceCg: 10, fineDuty: 0 });
    const p2 = new Plant({ ...DEFAULT_PLANT, seed: 9 });
    p2.jammed = true;
    const r2 = dose(z, p2, 100).rec;
    assert.equal(r2.reason, 'no-progress');
    assert.ok(r2.durationUs < 60_000_000, `${r2.durationUs}`);
  });

  it('no progress at coarse speed (the flow stops mid-dose) aborts within ~2 s', () => {
    const c = new DosingController({ toleranceCg: 10 });
    const plant = new Plant({ ...DEFAULT_PLANT, seed: 6 });
    for (let k = 0; k < 3; k++) dose(c, plant, 50);
    let jamAt = 0;
    let lastUs = 0;
    const { rec } = dose(c, plant, 100, {
      onStep: (tUs, p) => {
        lastUs = tUs;
        if (jamAt === 0 && p.mass > 5 && c.state === 'coarse') {
          jamAt = tUs;
          p.jammed = true;
        }
      },
    });
    assert.equal(rec.reason, 'no-progress');
    assert.ok(jamAt > 0, 'jammed during the coarse phase');
    assert.ok(lastUs - jamAt < 4_000_000, `aborted ${lastUs - jamAt} us after the jam`);
  });

  it('container removed (a sudden drop) aborts', () => {
    const { c, plant } = fresh({ containerDropCg: 1000 }, {}, 350_000);
    const { rec } = dose(c, plant, 100, {
      onStep: (_t, p) => {
        if (c.running && c.state !== 'taring' && c.netCg > 3000) p.mass -= 40;
      },
    });
    assert.equal(rec.reason, 'container-removed');
  });

  it('never-exceed weight aborts', () => {
    const { c, plant } = fresh({ neverExceedCg: 5000 }, {}, 350_000);
    const { rec } = dose(c, plant, 49.9, {
      onStep: (_t, p) => {
        if (c.running && c.state !== 'taring' && c.netCg > 2000) p.mass += 40;
      },
    });
    assert.equal(rec.reason, 'never-exceed');
  });

  it('stale sensor: no sample for 300 ms aborts, by step or by the watchdog', () => {
    const { c, plant } = fresh({}, {}, 350_000);
    let gapAt = 0;
    const { rec } = dose(c, plant, 100, {
      onStep: (t) => {
        if (c.state === 'coarse' && gapAt === 0 && t > 1_000_000) gapAt = t;
        return gapAt > 0 && t < gapAt + 320_000;
      },
    });
    assert.equal(rec.reason, 'stale-sensor');
    const c2 = new DosingController();
    c2.start(1000, 0);
    assert.equal(c2.checkStale(200_000), null);
    assert.deepEqual(c2.checkStale(300_001), { duty: 0 });
    assert.equal(c2.lastRecord()?.reason, 'stale-sensor');
  });

  it('a sensor fault flag and the max dose time abort', () => {
    const c = new DosingController({ maxDoseUs: 1_000_000 });
    c.start(1000, 0, { tare: false });
    assert.deepEqual(c.step({ cg: 0, tUs: 10_000, fault: true }), { duty: 0 });
    assert.equal(c.lastRecord()?.reason, 'sensor-fault');
    c.start(1000, 0, { tare: false });
    for (let t = 12_500; t < 1_100_000; t += 12_500) c.step({ cg: Math.trunc(t / 1000), tUs: t });
    assert.equal(c.lastRecord()?.reason, 'max-time');
  });

  it('settling waits for a stable window, not a fixed time', () => {
    const quiet = fresh({}, { noiseG: 0.005 }, 350_000);
    const noisy = fresh({}, { noiseG: 0.005 }, 350_000);
    const a = dose(quiet.c, quiet.plant, 50).rec;
    let shake = 100;
    const b = dose(noisy.c, noisy.plant, 50, {
      onStep: (_t, p) => {
        if (noisy.c.state === 'settling' && shake > 0) {
          shake--;
          p.mass += shake % 2 ? 0.2 : -0.2; // vibration after the cut-off
        }
      },
    }).rec;
    assert.ok(b.settleUs > a.settleUs + 500_000, `settle ${a.settleUs} vs ${b.settleUs}`);
  });

  it('tops up when under, if enabled', () => {
    const { c, plant } = fresh({ topUpPulseUs: 150_000, topUpMax: 3, toleranceCg: 3 }, {}, 700_000); // tau far too long: stops early
    const { rec } = dose(c, plant, 50);
    assert.ok(rec.topUps >= 1, 'at least one top-up pulse');
  });
});
