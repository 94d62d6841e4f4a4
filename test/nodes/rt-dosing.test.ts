// rt-dosing in a real Node-RED runtime on the simulated scale, in real time:
// a dose end to end, progress, the learned in-flight time persisted, bad
// targets, stop, safety aborts, and a blocked flow engine during a dose.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { sleep, tempDir, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scaleNode = require('../../nodes/rt-scale/rt-scale');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hx711Node = require('../../nodes/rt-hx711/rt-hx711');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dosingNode = require('../../nodes/rt-dosing/rt-dosing');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const functionNode = require('@node-red/nodes/core/function/10-function.js');

helper.init(require.resolve('node-red'));

interface Dose {
  target_g: number;
  final_g: number;
  error_g: number;
  overshoot_g: number;
  result: string;
  reason?: string;
  duration_s: number;
  coarse_s: number;
  fine_s: number;
  settle_s: number;
  inflight_g: number;
  steps: number;
  step_latency_p99_ms: number;
  tau_ms: number;
  learned?: Record<string, unknown>;
  recipe?: string;
}
interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Record<string, unknown>) => void): void;
}

function flow(dosing: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'dosing' },
    { id: 'sc', type: 'rt-scale', name: 'scale', version: 1, backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 1000 },
    { id: 'hx', z: 'f1', type: 'rt-hx711', version: 1, scale: 'sc', rate: 10, deltaG: 0, wires: [[]] },
    { id: 'dz', z: 'f1', type: 'rt-dosing', name: 'doser', version: 1, scale: 'sc', coarsePct: 100, finePct: 10, fineBandG: 2, toleranceG: 0.1, maxTimeS: 30, neverExceedG: 0, noProgressG: 0.5, containerDropG: 20, topUps: 0, learnDiv: 4, progressHz: 5, wires: [['res'], ['prog']], ...dosing },
    { id: 'res', z: 'f1', type: 'helper' },
    { id: 'prog', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: ['dz'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
    { id: 'busy', z: 'f1', type: 'function', func: 'const end = Date.now() + 500; while (Date.now() < end) {} return null;', outputs: 1, wires: [[]] },
  ];
}

describe('rt-dosing node (simulated scale, real time)', function () {
  this.timeout(90_000);
  let tmp: ReturnType<typeof tempDir>;
  const load = (f: object[], settings: Record<string, unknown> = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      helper.settings({ userDir: tmp.dir, ...settings });
      helper.load([scaleNode, hx711Node, dosingNode, catchNode, functionNode], f, (err: Error | undefined) => (err ? reject(err) : resolve()));
    });
  const results: Dose[] = [];
  const progress: Array<Record<string, unknown>> = [];
  const errors: string[] = [];
  const dose = (payload: unknown, topic?: string): void => (helper.getNode('dz') as TestNode).receive({ payload, ...(topic ? { topic } : {}) });
  const hx = (topic: string, payload: unknown): void => (helper.getNode('hx') as TestNode).receive({ topic, payload });
  async function start(f = flow(), settings: Record<string, unknown> = {}): Promise<void> {
    results.length = 0;
    progress.length = 0;
    errors.length = 0;
    await load(f, settings);
    (helper.getNode('res') as TestNode).on('input', (m) => results.push(m.payload as Dose));
    (helper.getNode('prog') as TestNode).on('input', (m) => progress.push(m.payload as Record<string, unknown>));
    (helper.getNode('caught') as TestNode).on('input', (m) => errors.push(String((m.error as { message: string }).message)));
    await sleep(800); // scale up and settled, dosing configured
  }

  beforeEach(() => {
    tmp = tempDir('rt-dosing-');
  });
  afterEach(async () => {
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the worker to end');
    tmp.cleanup();
  });

  it('doses a target end to end with progress, a full record, and stores the learned in-flight time', async () => {
    await start();
    dose({ target: 20, recipe: 'salt' });
    await waitFor(() => results.length === 1, 30_000, 'the dose result');
    const r = results[0];
    for (const k of ['target_g', 'final_g', 'error_g', 'overshoot_g', 'result', 'duration_s', 'coarse_s', 'fine_s', 'settle_s', 'inflight_g', 'steps', 'step_latency_p99_ms']) {
      assert.ok(k in r, `${k} in the record`);
    }
    assert.equal(r.target_g, 20);
    assert.equal(r.recipe, 'salt');
    assert.equal(r.result, 'ok', JSON.stringify(r));
    assert.ok(Math.abs(r.error_g) <= 0.1);
    // a fresh station's first dose probes at fine speed; a 20 g dose may stay there (coarse only when the probe leaves room)
    assert.ok(r.fine_s > 0.2 && r.settle_s > 0.4, JSON.stringify(r));
    const learned = r.learned as { doses: number; tau_ms: number; flow_gps: Record<string, number>; noise_g: number };
    assert.equal(learned.doses, 1);
    assert.ok(learned.tau_ms > 200 && learned.tau_ms < 600, `learned in-flight time ${learned.tau_ms} ms`);
    assert.ok(Math.abs(learned.flow_gps['10%'] - 2) < 0.3, `learned fine flow ${JSON.stringify(learned.flow_gps)}`);
    assert.ok(r.steps > 100, 'one step per sample');
    assert.ok(r.step_latency_p99_ms < 50, `step latency ${r.step_latency_p99_ms} ms`);
    assert.ok(progress.length >= 5, `progress messages: ${progress.length}`);
    assert.ok(progress.some((p) => p.state === 'fine'));
    // the learned value is written asynchronously (temp + fsync + rename): it lands shortly after the result
    const stateFile = (): string | undefined => {
      try {
        return readdirSync(join(tmp.dir, 'rtedge-calibration')).find((f) => f.startsWith('dosing-') && f.endsWith('.json'));
      } catch {
        return undefined;
      }
    };
    await waitFor(() => stateFile() !== undefined, 5000, 'the learned in-flight time stored');
    const st = JSON.parse(readFileSync(join(tmp.dir, 'rtedge-calibration', stateFile()!), 'utf8')) as { tauUs: number };
    assert.ok(Math.abs(st.tauUs - r.tau_ms * 1000) <= 10, `stored ${st.tauUs} us, record ${r.tau_ms} ms`);
  });

  it('rejects bad targets to Catch; stop ends a running dose at once', async () => {
    await start();
    dose('lots');
    dose(-5);
    dose(0);
    dose(5000); // over the 1000 g capacity
    dose({ recipe: 'x' });
    await waitFor(() => errors.length === 5, 5000, 'five errors');
    assert.ok(errors.every((e) => /badTarget|overCapacity|positive number|capacity/.test(e)), errors.join('\n'));
    dose(200);
    await sleep(300);
    dose(10);
    await waitFor(() => errors.length === 6, 5000, 'a second dose while one runs is refused');
    assert.match(errors[5], /busy|already running/);
    await sleep(700);
    dose(null, 'stop');
    await waitFor(() => results.length === 1, 5000, 'the stopped dose reported');
    assert.equal(results[0].result, 'aborted');
    assert.equal(results[0].reason, 'stop');
    assert.ok(results[0].final_g < 50, `stopped early: ${results[0].final_g} g`);
    assert.equal(errors.length, 6, 'a stop is not an error');
  });

  it('safety: a jam aborts for no progress; removing the container aborts; a silent sensor aborts', async () => {
    await start();
    hx('simulate', { jammed: true });
    dose(50);
    // a fresh station does not know whether its fine speed is inside the motor's dead band: it doubles it (10, 20, 40,
    // 50 %) with one onset wait of 4 s each before calling it a jam, ~16 s (a station that saw its fine duty flow: 4 s)
    await waitFor(() => results.length === 1, 30_000, 'the jammed dose');
    assert.equal(results[0].result, 'aborted');
    assert.equal(results[0].reason, 'no-progress');
    assert.ok(errors.some((e) => /aborted|no-progress/.test(e)), 'an abort for a fault is an error too');
    hx('simulate', { jammed: false, load_g: 40 }); // a 40 g container
    await sleep(800);
    dose(100);
    await sleep(1500);
    hx('simulate', { load_g: 0 }); // the container is taken away
    await waitFor(() => results.length === 2, 5000, 'the second dose');
    assert.equal(results[1].result, 'aborted');
    assert.equal(results[1].reason, 'container-removed');
    // a silent sensor mid-dose: the worker's watchdog stops the motor without waiting for a sample
    hx('simulate', { load_g: 40 });
    await sleep(800);
    dose(100);
    await sleep(1500);
    hx('simulate', { stall: true });
    await waitFor(() => results.length === 3, 5000, 'the third dose');
    assert.equal(results[2].result, 'aborted');
    assert.equal(results[2].reason, 'stale-sensor');
    hx('simulate', { stall: false });
  });

  it('closing the dosing node mid-dose (redeploy, shutdown) turns the motor off', async () => {
    await start();
    dose(200);
    await sleep(3500); // a fresh station probes at fine speed (~1.5 s), then coarse, 20 g/s
    const scale = helper.getNode('sc') as unknown as { request<T>(cmd: object): Promise<T> };
    const before = (await scale.request<{ massG: number }>({ t: 'sim' })).massG;
    assert.ok(before > 5, `material flowing: ${before} g`);
    await (helper.getNode('dz') as unknown as { close(removed: boolean): Promise<void> }).close(true);
    await sleep(600); // what was in flight lands
    const landed = (await scale.request<{ massG: number }>({ t: 'sim' })).massG;
    await sleep(1000);
    const later = (await scale.request<{ massG: number }>({ t: 'sim' })).massG;
    assert.ok(landed - before < 25, `only the material in flight (7 g at 20 g/s) and the close time landed: ${landed - before} g`);
    assert.equal(later, landed, 'the motor is off: nothing more flows');
  });

  it('a flow engine blocked 500 ms during a dose does not make it overrun', async () => {
    await start();
    dose(30);
    await sleep(1200); // coarse phase; the cut-off comes during or right after the block
    (helper.getNode('busy') as TestNode).receive({ payload: 1 });
    await waitFor(() => results.length === 1, 30_000, 'the dose result');
    const r = results[0];
    assert.equal(r.result, 'ok', JSON.stringify(r));
    assert.ok(r.step_latency_p99_ms < 20, `the control steps ran on time: ${r.step_latency_p99_ms} ms`);
  });

  // ---- issue 12: rt-scale and rt-dosing apart; defects found in review ----

  /** The default flow plus a second dosing node on the same scale (own outputs and Catch), hx711 weight/replies wired out, a Catch for hx. */
  function twoDosers(second: Record<string, unknown> = {}): object[] {
    // one Catch node for all three (the test helper loads the core catch module once per catch node in a flow): errors are told apart by msg.error.source.id
    const f = flow().map((n) => {
      const id = (n as { id: string }).id;
      return id === 'hx' ? { ...n, wires: [['hxout']] } : id === 'c1' ? { ...n, scope: ['dz', 'dz2', 'hx'] } : n;
    });
    return [
      ...f,
      { id: 'dz2', z: 'f1', type: 'rt-dosing', name: 'doser 2', version: 1, scale: 'sc', coarsePct: 100, finePct: 10, fineBandG: 2, toleranceG: 0.1, maxTimeS: 30, neverExceedG: 0, noProgressG: 0.5, containerDropG: 20, topUps: 0, learnDiv: 4, progressHz: 0, wires: [['res2'], ['prog2']], ...second },
      { id: 'res2', z: 'f1', type: 'helper' },
      { id: 'prog2', z: 'f1', type: 'helper' },
      { id: 'hxout', z: 'f1', type: 'helper' },
    ];
  }
  interface Side {
    results: Dose[];
    progress: Array<Record<string, unknown>>;
    errors: Array<{ message: string; code?: string }>;
  }
  /** Errors caught from node `source` (Catch c1 covers dz, dz2 and hx). */
  function caughtFrom(source: string): Array<{ message: string; code?: string }> {
    const out: Array<{ message: string; code?: string }> = [];
    (helper.getNode('caught') as TestNode).on('input', (m) => {
      const e = m.error as { message: string; code?: string; source?: { id?: string } };
      if (e.source?.id === source) out.push(e);
    });
    return out;
  }
  function side(res: string, prog: string, source: string): Side {
    const s: Side = { results: [], progress: [], errors: caughtFrom(source) };
    (helper.getNode(res) as TestNode).on('input', (m) => s.results.push(m.payload as Dose));
    (helper.getNode(prog) as TestNode).on('input', (m) => s.progress.push(m.payload as Record<string, unknown>));
    return s;
  }
  const stateFiles = (): string[] => {
    try {
      return readdirSync(join(tmp.dir, 'rtedge-calibration')).filter((f) => f.startsWith('dosing-') && f.endsWith('.json'));
    } catch {
      return [];
    }
  };

  it('two rt-dosing nodes on one scale: each gets only its own result and progress, runs with its own settings, and stores its own tau', async () => {
    await start(twoDosers());
    const b = side('res2', 'prog2', 'dz2');
    dose(20); // node dz: 5 progress messages/s
    await waitFor(() => results.length === 1, 30_000, `the first node's result`);
    await sleep(500);
    assert.equal(b.results.length, 0, `the second node got no result of the first one's dose: ${JSON.stringify(b.results)}`);
    assert.equal(b.progress.length, 0, 'nor its progress');
    assert.ok(progress.length >= 3, `the first node's own progress setting (5/s) applied: ${progress.length} progress messages`);
    (helper.getNode('dz2') as TestNode).receive({ payload: 25 }); // node dz2: progress off
    await waitFor(() => b.results.length === 1, 30_000, `the second node's result`);
    await sleep(500);
    assert.equal(results.length, 1, `the first node got no result of the second one's dose`);
    assert.equal(b.progress.length, 0, `the second node's own setting (no progress) applied: ${b.progress.length}`);
    assert.equal(results[0].target_g, 20);
    assert.equal(b.results[0].target_g, 25);
    assert.ok(['ok', 'under', 'over'].includes(results[0].result), JSON.stringify(results[0]));
    assert.ok(['ok', 'under', 'over'].includes(b.results[0].result), JSON.stringify(b.results[0]));
    // each node stores its own learned in-flight time, the one of its own record
    await waitFor(() => stateFiles().length === 2, 5000, 'two stored states');
    const stored = (id: string): number => {
      const f = stateFiles().find((x) => x.startsWith(`dosing-${id}-`));
      assert.ok(f, `the state file of ${id}: ${stateFiles().join(', ')}`);
      return (JSON.parse(readFileSync(join(tmp.dir, 'rtedge-calibration', f), 'utf8')) as { tauUs: number }).tauUs;
    };
    assert.ok(Math.abs(stored('dz') - results[0].tau_ms * 1000) <= 10, `dz stored ${stored('dz')} us, record ${results[0].tau_ms} ms`);
    assert.ok(Math.abs(stored('dz2') - b.results[0].tau_ms * 1000) <= 10, `dz2 stored ${stored('dz2')} us, record ${b.results[0].tau_ms} ms`);
    // one motor: while one node doses, the other is refused (to its Catch), and the running dose goes on
    dose(100);
    await sleep(500);
    (helper.getNode('dz2') as TestNode).receive({ payload: 10 });
    await waitFor(() => b.errors.length === 1, 5000, 'the second dose refused');
    assert.equal(b.errors[0].code, 'motor-held', JSON.stringify(b.errors[0]));
    dose(null, 'stop');
    await waitFor(() => results.length === 2, 5000, 'the stopped dose');
    assert.equal(results[1].reason, 'stop');
    assert.equal(b.results.length, 1, `a stop of one node is not the other's`);
  });

  it('tare, calibrate and manual motor are refused while a dose holds the motor (coded error to Catch), and work again after it', async () => {
    await start(twoDosers());
    const hxErrors = caughtFrom('hx');
    const replies: Array<Record<string, unknown>> = [];
    (helper.getNode('hxout') as TestNode).on('input', (m) => {
      if (m.topic !== 'weight') replies.push(m);
    });
    dose(200);
    await sleep(800);
    const scale = helper.getNode('sc') as unknown as { request<T>(cmd: object): Promise<T> };
    const massBefore = (await scale.request<{ massG: number }>({ t: 'sim' })).massG;
    hx('tare', null);
    hx('calibrate', 100);
    await waitFor(() => hxErrors.length === 2, 5000, 'tare and calibrate refused');
    for (const e of hxErrors) {
      assert.equal(e.code, 'motor-held', JSON.stringify(e));
      assert.match(e.message, /rt-scale\.codes\.motor-held|a dose holds the motor/, "worded from the scale's catalog");
    }
    await assert.rejects(scale.request({ t: 'motor', permille: 0 }), (e: Error & { code?: string }) => e.code === 'motor-held');
    assert.equal(replies.length, 0);
    await sleep(1000);
    const mid = (await scale.request<{ massG: number }>({ t: 'sim' })).massG;
    assert.equal(results.length, 0, `the dose goes on: ${JSON.stringify(results)}`);
    assert.ok(mid > massBefore, `the dose goes on: ${massBefore} g then ${mid} g`);
    dose(null, 'stop');
    await waitFor(() => results.length === 1, 5000, 'the stopped dose');
    hx('tare', null);
    await waitFor(() => replies.length === 1, 5000, 'the tare after the dose');
    assert.equal(replies[0].topic, 'tare');
  });

  it('two overlapping tare/calibrate requests both get their reply, in order', async () => {
    await start(twoDosers());
    const replies: Array<Record<string, unknown>> = [];
    const hxErrors = caughtFrom('hx');
    (helper.getNode('hxout') as TestNode).on('input', (m) => {
      if (m.topic !== 'weight') replies.push(m);
    });
    hx('simulate', { load_g: 100 });
    await sleep(600);
    hx('calibrate', 100); // the zero is the config's: 100 g on the cell gives its counts per gram
    hx('tare', null); // sent before the calibration has its samples: queued behind it
    await waitFor(() => replies.length === 2, 8000, `both replies (got ${replies.length}, errors ${JSON.stringify(hxErrors)})`);
    assert.deepEqual(hxErrors, []);
    assert.deepEqual(
      replies.map((r) => r.topic),
      ['calibrate', 'tare'],
    );
    const cal = replies[0].payload as { counts_per_gram: number };
    const tare = replies[1].payload as { zero: number };
    assert.ok(Math.abs(cal.counts_per_gram - 420) < 5, `counts per gram ${cal.counts_per_gram}`);
    assert.ok(Math.abs(tare.zero - (84_000 + 100 * 420)) < 500, `zero with 100 g on: ${tare.zero}`);
  });

  it('a HAL worker crash mid-dose ends that dose with an error result and the next dose runs after the restart', async () => {
    await start(flow(), { rtEdgeTestHooks: true });
    dose({ target: 100, recipe: 'r1' });
    await sleep(700);
    const dz = helper.getNode('dz') as unknown as { _crashWorker?: () => boolean };
    assert.ok(dz._crashWorker?.(), 'the crash hook reached the runner');
    await waitFor(() => results.length === 1, 5000, 'the pending dose ended');
    assert.equal(results[0].result, 'error');
    assert.equal(results[0].reason, 'worker-crashed');
    assert.equal(results[0].target_g, 100);
    assert.equal(results[0].recipe, 'r1');
    await waitFor(() => errors.some((e) => /errors\.crashed|HAL worker stopped during the dose/.test(e)), 5000, `the error to Catch: ${errors.join('; ')}`);
    // the worker restarts (backoff) and the runner is attached again: the next dose is accepted and runs
    const t0 = Date.now();
    let accepted = false;
    while (!accepted && Date.now() - t0 < 15_000) {
      const before = errors.length;
      dose(20);
      await sleep(700);
      accepted = errors.slice(before).every((e) => !/not running yet|busy|already running/.test(e)) && errors.length === before;
    }
    assert.ok(accepted, `a dose accepted after the restart: ${errors.join('; ')}`);
    await waitFor(() => results.length === 2, 30_000, 'the next dose result');
    assert.ok(['ok', 'under', 'over'].includes(results[1].result), JSON.stringify(results[1]));
    assert.equal(results[1].target_g, 20);
    assert.ok(!errors.some((e) => /busy|already running/.test(e)), `never refused as busy: ${errors.join('; ')}`);
  });
});
