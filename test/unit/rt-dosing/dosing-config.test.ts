// rt-dosing's config: version 2 replaces the unused "Learning: 1/N" (learnDiv)
// with learnDoses (the doses the learned in-flight time is the median of), and
// the fine band's default is 0 (automatic) for new nodes while a stored value
// is honoured. And what the node stores per station (learned-store.ts).
import assert from 'node:assert/strict';

import { DosingController, emptyLearned } from '../../../nodes/rt-dosing/dosing-core';
import { DEFAULT_LEARN_DOSES, readDosing } from '../../../nodes/rt-dosing/dosing-config';
import { learnedPayload } from '../../../nodes/rt-dosing/dose-result';
import { isLearnedPlant, priorOf, priorTauUs, storedLearning } from '../../../nodes/rt-dosing/learned-store';

const v1 = { id: 'd', type: 'rt-dosing', version: 1, scale: 's', coarsePct: 100, finePct: 10, fineBandG: 2, toleranceG: 0.1, maxTimeS: 60, neverExceedG: 0, noProgressG: 0.5, containerDropG: 20, topUps: 0, learnDiv: 4, progressHz: 5 };

describe('rt-dosing config v2: learnDoses, fine band 0 = automatic', () => {
  it('a version 1 node keeps its stored fine band (2 g stays a 2 g minimum) and learns from the default number of doses', () => {
    const c = readDosing(v1, 500_000);
    assert.deepEqual(c.problems, []);
    assert.equal(c.params.fineBandCg, 200);
    assert.equal(c.params.learnDoses, DEFAULT_LEARN_DOSES);
    assert.equal('learnDiv' in c.params, false, 'the unused 1/N is gone');
  });

  it('a config of no version (older still) migrates through v1 and v2', () => {
    const c = readDosing({ id: 'd', type: 'rt-dosing', scale: 's' }, 500_000);
    assert.deepEqual(c.problems, []);
    assert.equal(c.params.learnDoses, DEFAULT_LEARN_DOSES);
    assert.equal(c.params.fineBandCg, 200, 'what v1 filled in for a missing fine band is kept');
  });

  it('version 2: learnDoses reaches the controller, in its limits; fine band 0 means automatic', () => {
    const { learnDiv: _unused, ...rest } = v1;
    const c = readDosing({ ...rest, version: 2, fineBandG: 0, learnDoses: 5 }, 500_000);
    assert.deepEqual(c.problems, []);
    assert.equal(c.params.learnDoses, 5);
    assert.equal(c.params.fineBandCg, 0);
    assert.equal(new DosingController(c.params).p.learnDoses, 5);
    for (const bad of [2, 26, 4.5, 'x']) {
      const p = readDosing({ ...rest, version: 2, learnDoses: bad }, 500_000).problems;
      assert.ok(p.some((x) => x.params?.field === 'learnDoses'), `learnDoses ${bad} refused`);
    }
    assert.equal(readDosing({ ...rest, version: 2, learnDoses: '' }, 500_000).params.learnDoses, DEFAULT_LEARN_DOSES, 'empty: the default');
  });
});

describe('rt-dosing learned store', () => {
  const plant = { ...emptyLearned(100), doses: 3, tauUs: 360_000, flowCgPerS: { '100': 2000, '1000': 20000 } };

  it('stores the whole plant (and its in-flight time on its own for an older reader), and reads it back as it is', () => {
    const s = storedLearning(plant, new Date(0));
    assert.deepEqual(s, { learned: plant, tauUs: 360_000, at: '1970-01-01T00:00:00.000Z' });
    assert.deepEqual(priorOf(JSON.parse(JSON.stringify(s))), plant);
  });

  it("reads an older version's {tauUs} as a bare in-flight time; nothing, junk or forgotten as no plant", () => {
    assert.equal(priorOf({ tauUs: 380_000, at: 'x' }), 380_000);
    assert.equal(priorOf(null), undefined);
    assert.equal(priorOf('junk'), undefined);
    assert.equal(priorOf({ tauUs: -5 }), undefined);
    assert.equal(priorOf({ learned: { doses: 2 } }), undefined, 'a plant without a version is not taken');
    assert.equal(priorOf(storedLearning(null)), null, 'forgotten: no plant, and no fall back to the legacy file');
    assert.equal(priorTauUs(380_000), 380_000);
    assert.equal(priorTauUs(plant), 360_000);
    assert.equal(priorTauUs(null), 0);
  });

  it('a plant with fields added by a later version is kept whole; one with fields missing is shown with zeros', () => {
    const later = { ...plant, version: 1, someNewField: [1, 2] } as unknown;
    assert.ok(isLearnedPlant(later));
    assert.deepEqual(priorOf({ learned: later }), later);
    const older = { version: 1, doses: 2, tauUs: 300_000 } as unknown as Parameters<typeof learnedPayload>[0];
    const shown = learnedPayload(older);
    assert.equal(shown.doses, 2);
    assert.equal(shown.tau_ms, 300);
    assert.deepEqual(shown.flow_gps, {});
    assert.equal(shown.noise_g, 0);
    assert.equal(shown.fine_ripple_from, 'none');
    assert.equal(shown.fine_ripple_hz, 0);
  });

  it('the ripple at fine speed is shown with where its period comes from', () => {
    const base = { version: 1, doses: 12, ripplePeriodUs: 770_000, rippleCg: 40 };
    const shown = (extra: object): Record<string, unknown> => learnedPayload({ ...base, ...extra } as unknown as Parameters<typeof learnedPayload>[0]);
    // its own, from one fine ramp or across doses
    const own = shown({ fineRipplePeriodUs: 2_500_000, fineRippleCg: 7, fineRippleAcrossDoses: false });
    assert.deepEqual([own.fine_ripple_g, own.fine_ripple_hz, own.fine_ripple_from], [0.07, 0.4, 'fine_ramp']);
    assert.equal(shown({ fineRipplePeriodUs: 2_500_000, fineRippleCg: 7, fineRippleAcrossDoses: true }).fine_ripple_from, 'across_doses');
    // none of its own: the coarse period, unless 2 fine ramps ruled it out near that period
    const coarse = shown({ fineRipplePeriodUs: 0, fineRippleCg: 0 });
    assert.deepEqual([coarse.fine_ripple_g, coarse.fine_ripple_hz, coarse.fine_ripple_from], [0, 0, 'coarse_ramp']);
    assert.equal(shown({ coarseNotAtFine: 2, coarseNotAtFineUs: 800_000 }).fine_ripple_from, 'not_at_fine');
    assert.equal(shown({ coarseNotAtFine: 1, coarseNotAtFineUs: 800_000 }).fine_ripple_from, 'coarse_ramp', 'one ramp is not enough');
    assert.equal(shown({ coarseNotAtFine: 2, coarseNotAtFineUs: 1_000_000 }).fine_ripple_from, 'coarse_ramp', 'another coarse period (23 % away)');
    assert.equal(shown({ ripplePeriodUs: 0, coarseNotAtFine: 2, coarseNotAtFineUs: 800_000 }).fine_ripple_from, 'none');
  });

  it('the controller continues from a stored plant: the next dose is not a cold one', () => {
    const c = new DosingController({}, JSON.parse(JSON.stringify(storedLearning(plant))).learned);
    assert.equal(c.learned.doses, 3);
    assert.deepEqual(c.learned.flowCgPerS, plant.flowCgPerS);
  });
});
