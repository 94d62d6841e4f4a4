// rt-scale + rt-hx711 in a real Node-RED runtime (node-red-node-test-helper)
// on the simulated backend: weight messages, tare/calibrate and their
// persistence, bad input, faults, a blocked flow engine losing no sample, two
// scales, pigpio errors, and a clean close.
import assert from 'node:assert/strict';

import { hrNowUs } from '../../nodes/rt-scale/clock';
import type { DecodedSample, ScaleNode } from '../../nodes/rt-scale/scale-api';
import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { sleep, tempDir, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scaleNode = require('../../nodes/rt-scale/rt-scale');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hx711Node = require('../../nodes/rt-hx711/rt-hx711');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const functionNode = require('@node-red/nodes/core/function/10-function.js');

helper.init(require.resolve('node-red'));

interface W {
  grams: number;
  centigrams: number;
  raw: number;
  stable: boolean;
  ts: number;
  seq: number;
  fault?: boolean;
}
interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Record<string, unknown>) => void): void;
  calibration?(): { zero: number; cpgMilli: number };
}

function flow(scale: Record<string, unknown> = {}, hx: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'scale' },
    { id: 'sc', type: 'rt-scale', name: 'bench scale', version: 1, backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 5000, ...scale },
    { id: 'hx', z: 'f1', type: 'rt-hx711', name: 'load cell', version: 1, scale: 'sc', rate: 10, deltaG: 0.5, wires: [['out']], ...hx },
    { id: 'out', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: ['hx'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
}

function collect(id = 'out'): { weights: W[]; others: Array<Record<string, unknown>> } {
  const r = { weights: [] as W[], others: [] as Array<Record<string, unknown>> };
  (helper.getNode(id) as TestNode).on('input', (m) => (m.topic === 'weight' ? r.weights.push(m.payload as W) : r.others.push(m)));
  return r;
}
/** Errors at the Catch node: the message text plus the payload the node attached. */
function caught(): string[] {
  const errs: string[] = [];
  (helper.getNode('caught') as TestNode).on('input', (m) => errs.push(`${String((m.error as { message: string }).message)} ${JSON.stringify(m.payload ?? null)}`));
  return errs;
}
const send = (topic: string, payload?: unknown): void => (helper.getNode('hx') as TestNode).receive({ topic, payload });
const last = (ws: W[]): W => ws[ws.length - 1];

describe('rt-scale + rt-hx711 nodes (simulated backend)', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir>;
  const load = (f: object[], settings: Record<string, unknown> = {}): Promise<void> =>
    new Promise((resolve, reject) => {
      helper.settings({ userDir: tmp.dir, ...settings });
      helper.load([scaleNode, hx711Node, catchNode, functionNode], f, (err: Error | undefined) => (err ? reject(err) : resolve()));
    });

  beforeEach(() => {
    tmp = tempDir('rt-hx711-');
  });
  afterEach(async () => {
    await helper.unload();
    helper.settings({});
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the HAL worker to end');
    tmp.cleanup();
  });

  it('sends weight messages at the set rate; tare and calibrate work and persist across a restart', async () => {
    await load(flow());
    let o = collect();
    await waitFor(() => o.weights.length >= 12, 5000, 'weight messages');
    const w = last(o.weights);
    assert.deepEqual(Object.keys(w).sort(), ['centigrams', 'grams', 'raw', 'seq', 'stable', 'ts'].sort());
    assert.ok(Math.abs(w.ts - Date.now()) < 2000, 'ts is epoch ms');
    const dts = o.weights.slice(3).map((x, i) => x.ts - o.weights[i + 2].ts);
    assert.ok(dts.every((d) => d >= 90), `about 10 messages a second, not 80: ${dts}`);
    assert.ok(Math.abs(w.grams) < 0.5, `empty simulated cell reads about 0 g with the default calibration: ${w.grams}`);
    // a 37.5 g container, tared away
    send('simulate', { load_g: 37.5 });
    await waitFor(() => Math.abs(last(o.weights).grams - 37.5) < 0.2 && last(o.weights).stable, 5000, 'the container on the scale');
    send('tare');
    await waitFor(() => o.others.length === 1, 5000, 'tare answered');
    assert.ok(Math.abs((o.others[0].payload as { zero: number }).zero - (84000 + 37.5 * 420)) < 10);
    await waitFor(() => Math.abs(last(o.weights).grams) < 0.1, 5000, 'tared to 0');
    // place 200 g on the container and calibrate with a wrong idea of the counts per gram first
    send('simulate', { load_g: 237.5 });
    await waitFor(() => last(o.weights).stable && last(o.weights).grams > 150, 5000, 'weight settled');
    send('calibrate', 100); // the user says it is 100 g: the scale now reads 100 g for it
    await waitFor(() => o.others.length === 2, 5000, 'calibrate answered');
    const cpg = (o.others[1].payload as { counts_per_gram: number }).counts_per_gram;
    assert.ok(Math.abs(cpg - 840) < 2, `counts per gram ${cpg}`);
    await waitFor(() => Math.abs(last(o.weights).grams - 100) < 0.2, 5000, 'reads 100 g after calibration');
    const stored = (helper.getNode('sc') as TestNode).calibration!();
    // restart: same config, same user dir -> the stored calibration is used
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the worker to end');
    await load(flow());
    // the stored calibration is read asynchronously (never a sync read on the flow engine's thread), before sampling starts
    const sameCal = (want: object) => (): boolean => JSON.stringify((helper.getNode('sc') as TestNode).calibration!()) === JSON.stringify(want);
    await waitFor(sameCal(stored), 2000, 'stored calibration survives a restart');
    o = collect();
    await waitFor(() => o.weights.length >= 2, 5000, 'sampling again');
    send('simulate', { load_g: 37.5 + 50 });
    await waitFor(() => o.weights.length > 5 && Math.abs(last(o.weights).grams - 25) < 0.2, 5000, '50 g reads 25 g with the stored calibration');
    // editing the calibration fields in the editor replaces the stored one
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the worker to end');
    await load(flow({ zero: 84010 }));
    await sleep(300); // the stored file has been read (and is not used: the config changed)
    assert.deepEqual((helper.getNode('sc') as TestNode).calibration!(), { zero: 84010, cpgMilli: 420000 });
  });

  it('a rate out of its limit (500/s): the node refuses to start with the field and range, and sends no weight', async () => {
    await load(flow({}, { rate: 500 }));
    const o = collect();
    const errs = caught();
    send('tare');
    await waitFor(() => errs.length === 1, 5000, 'an error at Catch');
    assert.match(errs[0]!, /errors\.badConfig|Invalid configuration/); // the test runtime words no catalog: the key
    await sleep(500);
    assert.equal(o.weights.length, 0, 'no weight from a refused config');
  });

  it('bad input goes to Catch with a clear message and the node keeps sending weight', async () => {
    await load(flow());
    const o = collect();
    const errs = caught();
    await waitFor(() => o.weights.length >= 2, 5000, 'weight messages');
    send('calibrate', 'heavy');
    send('calibrate', -5);
    send('calibrate', 1e7);
    send('power', 'maybe');
    send('explode', 1);
    await waitFor(() => errs.length === 5, 5000, 'five errors');
    assert.match(errs[0], /badWeight|known weight/);
    assert.match(errs[1], /badWeight|known weight/);
    assert.match(errs[2], /overCapacity|capacity/);
    assert.match(errs[3], /badPower|power needs/);
    assert.match(errs[4], /unknownTopic|unknown command/);
    const n = o.weights.length;
    await waitFor(() => o.weights.length >= n + 5, 5000, 'still sending weight');
  });

  it('a stalled chip raises a fault to Catch and recovers; power off stops the samples', async () => {
    await load(flow());
    const o = collect();
    const errs = caught();
    await waitFor(() => o.weights.length >= 3, 5000, 'weight messages');
    send('simulate', { stall: true });
    await waitFor(() => errs.some((e) => /fault|no_data/.test(e)), 5000, 'a fault');
    assert.ok(errs.some((e) => /no_data/.test(e)), errs.join('\n'));
    const n = o.weights.length;
    await sleep(300);
    assert.ok(o.weights.length <= n + 1, 'no weight while the chip is silent');
    send('simulate', { stall: false });
    await waitFor(() => o.weights.length > n + 3, 5000, 'weight again');
    send('power', false);
    await sleep(300);
    const m = o.weights.length;
    await sleep(500);
    assert.equal(o.weights.length, m, 'no samples while powered down');
    send('power', 'on');
    await waitFor(() => o.weights.length > m + 3, 5000, 'samples after power on');
  });

  it('a flow engine blocked 500 ms by a function node does not delay the reads: 80 SPS from the reads\' own times, none late', async () => {
    const f = flow({}, { rate: 0 });
    f.push({ id: 'busy', z: 'f1', type: 'function', name: 'busy 500 ms', func: 'const end = Date.now() + 500; while (Date.now() < end) {} return msg;', outputs: 1, wires: [[]] });
    await load(f);
    const o = collect();
    // the samples as the worker read them: data-ready edge (the chip's own crystal) and data-ready -> ring
    const reads: DecodedSample[] = [];
    (helper.getNode('sc') as ScaleNode).attach({ onSamples: (b) => reads.push(...b) });
    await waitFor(() => o.weights.length >= 80, 5000, 'a second of samples');
    const before = o.weights.length;
    const blockFrom = hrNowUs();
    (helper.getNode('busy') as TestNode).receive({ payload: 1 });
    const blockUntil = hrNowUs();
    assert.ok(blockUntil - blockFrom >= 450_000, 'the flow engine was blocked');
    await waitFor(() => o.weights.length >= before + 120, 5000, 'samples after the block');
    const ws = o.weights;
    for (let i = 1; i < ws.length; i++) assert.equal(ws[i].seq, ws[i - 1].seq + 1, `seq ${ws[i - 1].seq} -> ${ws[i].seq}`);
    // read time = data-ready + lateness (both on the worker's clock): the reads went on while the flow engine was blocked
    const readUs = reads.map((r) => r.tUs + r.latUs);
    const inBlock = readUs.filter((t) => t > blockFrom + 50_000 && t < blockUntil - 50_000).length;
    assert.ok(inBlock >= 25, `the worker kept reading during the block (${inBlock} reads in its middle 400 ms, 32 due)`);
    // rate from the reads' own times, lateness from the chip's data-ready to the read (generous bounds: shared noisy cores)
    const span = (readUs[readUs.length - 1] - readUs[0]) / 1e6;
    const sps = (reads.length - 1) / span;
    assert.ok(Math.abs(sps - 80) < 4, `${sps.toFixed(2)} reads/s`);
    const lost = reads.slice(1).reduce((n, r, i) => n + Math.round((r.tUs - reads[i].tUs) / 12_500) - 1, 0);
    assert.ok(lost <= reads.length / 50, `conversions overwritten before a read: ${lost} of ${reads.length}`);
    const late = reads.map((r) => r.latUs / 1000).sort((a, b) => a - b);
    const median = late[Math.floor(late.length / 2)];
    assert.ok(median < 5 && late[late.length - 1] < 250, `lateness from data-ready, ms: median ${median}, max ${late[late.length - 1]}`);
  });

  it('two scales on one runtime share one HAL worker; close ends it and leaves no timers', async () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const f = flow();
    f.push(
      { id: 'sc2', type: 'rt-scale', name: 'second scale', version: 1, backend: 'simulated', doutPin: 22, sckPin: 23, gain: 'A128', rate: 10, zero: 84000, countsPerGram: 420, motorPin: 13, motorHz: 10000, median: true, average: 2, stableG: 0.05, faultRun: 3, capacityG: 5000 },
      { id: 'hx2', z: 'f1', type: 'rt-hx711', version: 1, scale: 'sc2', rate: 0, deltaG: 0, wires: [['out2']] },
      { id: 'out2', z: 'f1', type: 'helper' },
    );
    // Two load/close cycles: the runtime keeps a few timers of its own after the first start;
    // the second cycle must not add any.
    let baseline = 0;
    for (let cycle = 0; cycle < 2; cycle++) {
      await load(f);
      const a = collect();
      const b = collect('out2');
      await waitFor(() => a.weights.length >= 10 && b.weights.length >= 8, 5000, 'both scales sampling');
      assert.equal(activeWorkerCount(), 1, 'one HAL thread owns every scale');
      const dt = b.weights.slice(1).map((w, i) => w.ts - b.weights[i].ts);
      assert.ok(dt.every((d) => d >= 95 && d <= 105), `the second scale runs at 10 SPS: ${dt}`);
      await helper.unload();
      await waitFor(() => activeWorkerCount() === 0, 5000, 'the HAL worker ended with the scales');
      await sleep(600); // status throttles settle
      if (cycle === 0) baseline = timers();
    }
    assert.ok(timers() <= baseline, `no timers left by a load/close cycle: ${timers()} > ${baseline}`);
  });

  it('the pigpio backend that cannot start gives a clear error naming the simulated backend, not a crash', async () => {
    for (const mod of ['pigpio', 'pigpio-module-that-is-not-installed']) {
      await load(flow({ backend: 'pigpio' }), { rtEdgeTestHooks: true, rtEdgePigpioModule: mod });
      const hx = helper.getNode('hx') as unknown as { status(s: Record<string, unknown>): void };
      const shown: Array<Record<string, unknown>> = [];
      const status = hx.status.bind(hx);
      hx.status = (st) => {
        shown.push(st);
        status(st);
      };
      const errs = caught();
      await waitFor(() => errs.length >= 1, 10_000, `an error for ${mod}`);
      // the catalog text names the simulated backend (test/unit/shared/coded.test.ts); the helper's RED._ gives the key
      assert.match(errs[0], /simulated|codes\.pigpio-(missing|init|gpio)/, errs[0]);
      assert.match(errs[0], /pigpio/, errs[0]);
      await waitFor(() => shown.some((st) => st.fill === 'red'), 5000, 'a red status on the rt-hx711 node');
      // pigpio is only ever loaded in the HAL worker thread, never on the flow engine's
      assert.deepEqual(Object.keys(require.cache).filter((k) => /[\\/]pigpio[\\/]/.test(k)), [], 'pigpio not in the main thread');
      send('tare');
      await waitFor(() => errs.length >= 2, 5000, 'commands fail cleanly');
      await helper.unload();
    }
  });
});
