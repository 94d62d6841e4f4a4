// rt-dosing keeps what it learned of its plant, per station, in a real
// Node-RED runtime on the simulated scale (real time): the whole learned plant
// is stored after each dose and handed back to the runner after a worker
// restart and after a redeploy, so the next dose does not probe again; an
// older version's {tauUs} file is read; the admin endpoints show the learned
// plant and forget it (refused while a dose runs).
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { sleep, tempDir, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scaleNode = require('../../nodes/rt-scale/rt-scale');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dosingNode = require('../../nodes/rt-dosing/rt-dosing');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

interface Learned {
  doses: number;
  flow_gps: Record<string, number>;
  delay_ms: number;
  tau_ms: number;
  coarse_tau_ms: number;
  jitter_ms: number;
  noise_g: number;
  ripple_g: number;
  ripple_hz: number;
  fine_duty_pct: number;
  outliers: number;
}
interface Dose {
  target_g: number;
  result: string;
  error_g: number;
  coarse_s: number;
  fine_s: number;
  tau_ms: number;
  learned?: Learned;
}
interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Record<string, unknown>) => void): void;
}
interface Stored {
  learned: { version: number; doses: number; tauUs: number; flowCgPerS: Record<string, number> } | null;
  tauUs?: number;
  forgotten?: boolean;
}

function flow(): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'dosing' },
    { id: 'sc', type: 'rt-scale', name: 'scale', version: 1, backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 1000 },
    { id: 'dz', z: 'f1', type: 'rt-dosing', name: 'doser', version: 2, scale: 'sc', coarsePct: 100, finePct: 10, fineBandG: 0, toleranceG: 0.1, maxTimeS: 30, neverExceedG: 0, noProgressG: 0.5, containerDropG: 20, topUps: 0, learnDoses: 9, progressHz: 5, wires: [['res'], ['prog']] },
    { id: 'res', z: 'f1', type: 'helper' },
    { id: 'prog', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: ['dz'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
}

describe('rt-dosing learned plant: stored per station, restored, shown and forgotten (simulated scale, real time)', function () {
  this.timeout(120_000);
  let tmp: ReturnType<typeof tempDir>;
  const results: Dose[] = [];
  /** Progress states, one list per dose (a new list at each result). */
  let states: string[][] = [[]];
  const errors: string[] = [];
  const store = (): string => join(tmp.dir, 'rtedge-calibration');
  const stateFile = (): string | undefined => {
    try {
      return readdirSync(store()).find((f) => f.startsWith('dosing-dz-scale-') && f.endsWith('.json'));
    } catch {
      return undefined;
    }
  };
  const stored = (): Stored | null => {
    const f = stateFile();
    if (!f) return null;
    try {
      return JSON.parse(readFileSync(join(store(), f), 'utf8')) as Stored;
    } catch {
      return null; // being renamed over
    }
  };
  async function start(settings: Record<string, unknown> = {}): Promise<void> {
    results.length = 0;
    errors.length = 0;
    states = [[]];
    helper.settings({ userDir: tmp.dir, ...settings });
    await new Promise<void>((resolve, reject) => helper.load([scaleNode, dosingNode, catchNode], flow(), (err: Error | undefined) => (err ? reject(err) : resolve())));
    (helper.getNode('res') as TestNode).on('input', (m) => {
      results.push(m.payload as Dose);
      states.push([]);
    });
    (helper.getNode('prog') as TestNode).on('input', (m) => {
      const s = String((m.payload as { state: string }).state);
      const cur = states[states.length - 1];
      if (cur[cur.length - 1] !== s) cur.push(s);
    });
    (helper.getNode('caught') as TestNode).on('input', (m) => errors.push(String((m.error as { message: string }).message)));
  }
  /** Sends a dose, retrying while the runner is not attached yet (start, worker restart); resolves with its result. */
  async function doseOf(grams: number): Promise<Dose> {
    const n = results.length;
    const t0 = Date.now();
    for (;;) {
      const before = errors.length;
      (helper.getNode('dz') as TestNode).receive({ payload: grams });
      // accepted (progress or a result arrives) or refused (an error arrives): whichever comes first
      await waitFor(() => errors.length > before || results.length > n || states[states.length - 1].length > 0, 15_000, `the ${grams} g dose accepted or refused`);
      if (errors.length === before) break;
      assert.ok(errors.slice(before).every((e) => /not running yet|errors\.notReady/.test(e)), `dose refused: ${errors.join('; ')}`);
      assert.ok(Date.now() - t0 < 15_000, `a dose accepted: ${errors.join('; ')}`);
      await sleep(200);
    }
    await waitFor(() => results.length > n, 40_000, `the result of the ${grams} g dose`);
    return results[n];
  }
  /** The motor states of dose i after taring: a cold station probes at fine speed first, a warm one starts at coarse. */
  const firstMotorState = (i: number): string | undefined => states[i].find((s) => s === 'fine' || s === 'coarse');
  const get = (path: string): Promise<{ status: number; body: Record<string, unknown> }> =>
    helper
      .request()
      .get(path)
      .then((r: { status: number; body: Record<string, unknown> }) => r);
  const post = (path: string): Promise<{ status: number; body: Record<string, unknown> }> =>
    helper
      .request()
      .post(path)
      .then((r: { status: number; body: Record<string, unknown> }) => r);

  beforeEach(() => {
    tmp = tempDir('rt-dosing-learned-');
  });
  afterEach(async () => {
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the worker to end');
    tmp.cleanup();
  });

  it('stores the whole learned plant; a worker restart and a redeploy continue from it (no second probe)', async () => {
    await start({ rtEdgeTestHooks: true });
    const r1 = await doseOf(30);
    assert.ok(['ok', 'under', 'over'].includes(r1.result), JSON.stringify(r1));
    assert.equal(r1.learned?.doses, 1);
    assert.equal(firstMotorState(0), 'fine', `a fresh station probes at fine speed first: ${states[0].join(' > ')}`);
    // the whole plant is on disk (atomic write, shortly after the result), with the in-flight time on its own for an older version
    const s1 = await waitFor(() => (stored()?.learned?.doses === 1 ? stored() : null), 5000, 'the learned plant stored');
    assert.equal(typeof s1!.learned!.version, 'number');
    assert.ok(Object.keys(s1!.learned!.flowCgPerS).length >= 1, JSON.stringify(s1));
    assert.equal(s1!.tauUs, s1!.learned!.tauUs);

    // the HAL worker restarts: the runner is attached again from what was learned
    const dz = helper.getNode('dz') as unknown as { _crashWorker?: () => boolean };
    assert.ok(dz._crashWorker?.(), 'the crash hook reached the runner');
    await sleep(300);
    const r2 = await doseOf(30);
    assert.equal(r2.learned?.doses, 2, `the runner restarted from the learned plant: ${JSON.stringify(r2.learned)}`);
    assert.equal(firstMotorState(1), 'coarse', `no probe after the worker restart: ${states[1].join(' > ')}`);
    await waitFor(() => stored()?.learned?.doses === 2, 5000, 'the second dose stored');

    // redeploy (a new node instance, same user dir): the stored plant is read and the next dose goes on from it
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the worker to end');
    await start();
    const r3 = await doseOf(30);
    assert.ok(['ok', 'under', 'over'].includes(r3.result), JSON.stringify(r3));
    assert.equal(r3.learned?.doses, 3, `the redeployed node continued from the stored plant: ${JSON.stringify(r3.learned)}`);
    assert.equal(firstMotorState(0), 'coarse', `no probe after the redeploy: ${states[0].join(' > ')}`);
    await waitFor(() => stored()?.learned?.doses === 3, 5000, 'the third dose stored');
  });

  it('admin endpoints: the learned plant (an older {tauUs} file too), forget refused while dosing, forget takes effect for the next dose', async () => {
    // the file an older version wrote (legacy name, in-flight time only)
    mkdirSync(store(), { recursive: true });
    writeFileSync(join(store(), 'dosing-dz.json'), JSON.stringify({ tauUs: 380_000, at: '2026-01-01T00:00:00.000Z' }));
    await start();
    await waitFor(async () => (await get('/rt-dosing/dz/learned')).body.loaded === true, 5000, 'the stored state read');
    let v = await get('/rt-dosing/dz/learned');
    assert.equal(v.status, 200);
    assert.equal(v.body.learned, null);
    assert.equal(v.body.legacy_tau_ms, 380);
    assert.equal(v.body.running, false);
    assert.equal((await get('/rt-dosing/no-such-node/learned')).status, 404);
    assert.equal((await post('/rt-dosing/no-such-node/forget')).status, 404);

    // refused while a dose runs; the dose goes on
    const first = doseOf(30);
    await waitFor(() => states[0].length > 0, 10_000, 'the dose running');
    const busy = await post('/rt-dosing/dz/forget');
    assert.equal(busy.status, 409);
    assert.match(String(busy.body.error), /dose is running|errors\.forgetBusy/);
    const r1 = await first;
    assert.ok(['ok', 'under', 'over'].includes(r1.result), JSON.stringify(r1));
    // the older in-flight time was the start: the first dose adds its own to it
    assert.equal(r1.learned?.doses, 1);
    v = await get('/rt-dosing/dz/learned');
    const l = v.body.learned as Learned;
    assert.equal(l.doses, 1);
    for (const k of ['flow_gps', 'delay_ms', 'tau_ms', 'coarse_tau_ms', 'lag_ms', 'jitter_ms', 'noise_g', 'ripple_g', 'ripple_hz', 'fine_ripple_g', 'fine_ripple_hz', 'fine_ripple_from', 'ripple_coast', 'fine_duty_pct', 'outliers']) assert.ok(k in l, `${k} shown`);
    assert.deepEqual(l, r1.learned, 'the endpoint shows what the result reported');
    assert.equal(v.body.legacy_tau_ms, undefined);
    await waitFor(() => stored()?.learned?.doses === 1, 5000, 'the learned plant stored');

    // forget: the node and the stored file lose the plant; the next dose probes again, from nothing
    const ok = await post('/rt-dosing/dz/forget');
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    v = await get('/rt-dosing/dz/learned');
    assert.equal(v.body.learned, null);
    await waitFor(() => stored()?.forgotten === true, 5000, 'the forgotten state stored');
    assert.equal(stored()!.learned, null);
    // a redeploy does not bring it back, nor the older version's file beside it
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the worker to end');
    await start();
    await waitFor(async () => (await get('/rt-dosing/dz/learned')).body.loaded === true, 5000, 'the stored state read');
    v = await get('/rt-dosing/dz/learned');
    assert.equal(v.body.learned, null);
    assert.equal(v.body.legacy_tau_ms, undefined, 'the legacy file is not read after a forget');
    const r2 = await doseOf(30);
    assert.equal(r2.learned?.doses, 1, `the dose after forget started from nothing: ${JSON.stringify(r2.learned)}`);
    assert.equal(firstMotorState(0), 'fine', `it probed again: ${states[0].join(' > ')}`);
  });
});
