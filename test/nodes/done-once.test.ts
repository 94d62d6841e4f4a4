// Checklist 8: every input handler calls done() exactly once per message, and
// errors go through done(err) so a Catch node sees them. For each node under
// test, 1000 messages (valid and malformed mixed) go in; a Complete node and a
// Catch node, both scoped to that node, record which messages finished.
// Node-RED routes done() to Complete and done(err) to Catch (never both), so
// after the flow settles: Complete saw exactly the valid messages, Catch
// exactly the malformed ones, 1000 in all, and no message twice (a double
// done() would show up as a repeat).
import assert from 'node:assert/strict';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { DoorSim } from '../helpers/door-sim';
import { type PtyPair, ptyPair } from '../helpers/pty';
import { type Peer, startPeer } from '../helpers/tcp-peer';
import { sleep, tempDir, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const gateNode = require('../../nodes/rt-gate-command/rt-gate-command');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const endpointNode = require('../../nodes/rt-gate-endpoint/rt-gate-endpoint');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const monitorModule = require('../../nodes/rt-perf-monitor/rt-perf-monitor') as (RED: Record<string, unknown>) => void;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const scaleNode = require('../../nodes/rt-scale/rt-scale');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hx711Node = require('../../nodes/rt-hx711/rt-hx711');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dosingNode = require('../../nodes/rt-dosing/rt-dosing');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const portNode = require('../../nodes/rt-rs485-port/rt-rs485-port');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const watchNode = require('../../nodes/rt-rs485-watch/rt-rs485-watch');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const completeNode = require('@node-red/nodes/core/common/24-complete.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { hooks } = require('@node-red/util') as { hooks: unknown };

/** The test helper's RED has no RED.hooks; the runtime passes @node-red/util's (as rt-perf-monitor.test.ts does). */
function monitorNode(RED: Record<string, unknown>): void {
  RED.hooks = hooks;
  monitorModule(RED);
}

helper.init(require.resolve('node-red'));

interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Record<string, unknown>) => void): void;
}

const N = 1000;

/** The node under test `id` on tab f1, plus Complete and Catch scoped to it, each wired to a recording helper. */
function harness(id: string): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'done-once' },
    { id: 'cmp', z: 'f1', type: 'complete', scope: [id], uncaught: false, wires: [['completed']] },
    { id: 'completed', z: 'f1', type: 'helper' },
    { id: 'cat', z: 'f1', type: 'catch', scope: [id], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
}

interface Tally {
  completed: number[];
  caught: number[];
  /** Catch messages that are not one of ours (an error without the input msg) */
  stray: string[];
}

function tally(): Tally {
  const t: Tally = { completed: [], caught: [], stray: [] };
  (helper.getNode('completed') as TestNode).on('input', (m) => t.completed.push(m.seq as number));
  (helper.getNode('caught') as TestNode).on('input', (m) => {
    if (typeof m.seq === 'number') t.caught.push(m.seq);
    else t.stray.push(String((m.error as { message?: string } | undefined)?.message));
  });
  return t;
}

/**
 * Sends `make(i)` for i in 0..N-1 (in bursts of 100, a macrotask apart), each
 * tagged msg.seq = i; waits until N have finished, lets late or double calls
 * arrive, then checks the tally against the malformed set.
 */
async function fire(id: string, make: (i: number) => { msg: Record<string, unknown>; bad: boolean }, opts: { settleMs?: number; mixed?: boolean } = {}): Promise<Tally> {
  const { settleMs = 15_000, mixed = true } = opts;
  const t = tally();
  const node = helper.getNode(id) as TestNode;
  const bad: number[] = [];
  for (let i = 0; i < N; i++) {
    const m = make(i);
    if (m.bad) bad.push(i);
    node.receive({ ...m.msg, seq: i });
    if (i % 100 === 99) await sleep(5);
  }
  await waitFor(() => t.completed.length + t.caught.length >= N, settleMs, `${N} messages done`, 20).catch((err: Error) => {
    throw new Error(`${err.message}: completed ${t.completed.length}, caught ${t.caught.length}`);
  });
  await sleep(500); // a second done() for any message would arrive by now
  const seen = new Map<number, number>();
  for (const s of [...t.completed, ...t.caught]) seen.set(s, (seen.get(s) ?? 0) + 1);
  const twice = [...seen].filter(([, n]) => n > 1).map(([s]) => s);
  const never = Array.from({ length: N }, (_, i) => i).filter((i) => !seen.has(i));
  assert.deepEqual(twice.slice(0, 20), [], `messages finished more than once (${twice.length})`);
  assert.deepEqual(never.slice(0, 20), [], `messages never finished (${never.length})`);
  if (mixed) assert.ok(bad.length > 0 && bad.length < N, 'a mix of valid and malformed');
  assert.equal(t.completed.length, N - bad.length, 'Complete fired once per valid message');
  assert.deepEqual([...t.caught].sort((a, b) => a - b), bad, 'Catch got exactly the malformed messages');
  assert.equal(t.completed.length + t.caught.length, N);
  assert.deepEqual(t.stray, [], 'no other errors');
  return t;
}

const load = (types: unknown[], f: object[]): Promise<void> =>
  new Promise((resolve, reject) => helper.load([...types, completeNode, catchNode], f, (err: Error | undefined) => (err ? reject(err) : resolve())));

describe('input handlers call done() exactly once per message (1000 messages, Complete + Catch)', function () {
  this.timeout(60_000);
  let tmp: ReturnType<typeof tempDir> | null = null;
  let peer: Peer | null = null;
  let pty: PtyPair | null = null;
  let sim: DoorSim | null = null;
  afterEach(async () => {
    await helper.unload();
    helper.settings({});
    await waitFor(() => activeWorkerCount() === 0, 5000, 'no worker left');
    await peer?.stop();
    await sim?.stop();
    await pty?.dispose();
    tmp?.cleanup();
    peer = null;
    sim = null;
    pty = null;
    tmp = null;
  });

  it('rt-gate-command (real TCP peer; results ok or dropped at the default queue limit are done too)', async () => {
    peer = await startPeer('ok', 0);
    await load(
      [endpointNode, gateNode],
      [
        ...harness('gc'),
        { id: 'ep', type: 'rt-gate-endpoint', name: 'gate ctl', version: 1, host: '127.0.0.1', port: peer.port, template: 'OPEN {gate}\\r\\n', ack: '^OK {gate}$', timeout: 2000, backoffMin: 50, backoffMax: 200, keepAlive: true },
        { id: 'gc', z: 'f1', type: 'rt-gate-command', name: 'gate cmd', version: 1, endpoint: 'ep', queueLimit: 64, wires: [['out']] },
        { id: 'out', z: 'f1', type: 'helper' },
      ],
    );
    const results: string[] = [];
    (helper.getNode('out') as TestNode).on('input', (m) => results.push((m.payload as { result: string }).result));
    const malformed: Array<Record<string, unknown>> = [
      { payload: {} }, // no gate
      { payload: { gate: '' } },
      { payload: { gate: 'G\r\n1' } }, // a line break
      { payload: { gate: 'G'.repeat(2000) } }, // over 1024 bytes
      { payload: 'open it' },
      { payload: { gate: { id: 1 } } },
    ];
    const t = await fire('gc', (i) =>
      i % 10 < 3 ? { msg: malformed[i % malformed.length], bad: true } : { msg: i % 2 ? { payload: { gate: `G${i}`, track_id: i } } : { payload: null, gate: i }, bad: false },
    );
    assert.equal(results.length, t.completed.length, 'one result per accepted command');
    assert.ok(results.includes('ok'), 'some commands acknowledged');
    assert.deepEqual([...new Set(results)].filter((r) => r !== 'ok' && r !== 'dropped'), [], 'only ok or dropped');
  });

  it('rt-perf-monitor (commands health/snapshot/reset; anything else is an unknown command)', async () => {
    await load(
      [monitorNode],
      [
        ...harness('mon'),
        { id: 'mon', z: 'f1', type: 'rt-perf-monitor', name: '', version: 1, mode: 'sampling', window: 1, period: 2, interval: 1, filter: '', defaultRules: true, rules: '[]', topN: 10, maxNodes: 200, wires: [[], [], []] },
      ],
    );
    const valid: Array<Record<string, unknown>> = [{ topic: 'health' }, { topic: 'snapshot' }, { payload: 'snapshot' }, { topic: 'reset' }, { payload: 'health' }];
    const malformed: Array<Record<string, unknown>> = [{ topic: 'bogus' }, { payload: 42 }, { payload: { cmd: 'health' } }, {}, { topic: 'HEALTH!' }];
    await fire('mon', (i) => (i % 4 === 0 ? { msg: malformed[i % malformed.length], bad: true } : { msg: valid[i % valid.length], bad: false }));
  });

  it('rt-hx711 (simulated scale: simulate commands; bad topics, weights and power values)', async () => {
    tmp = tempDir('rt-done-hx-');
    helper.settings({ userDir: tmp.dir });
    await load(
      [scaleNode, hx711Node],
      [
        ...harness('hx'),
        { id: 'sc', type: 'rt-scale', name: 'scale', version: 1, backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 5000 },
        { id: 'hx', z: 'f1', type: 'rt-hx711', name: 'load cell', version: 1, scale: 'sc', rate: 10, deltaG: 0.5, wires: [['w']] },
        { id: 'w', z: 'f1', type: 'helper' },
      ],
    );
    let weights = 0;
    (helper.getNode('w') as TestNode).on('input', (m) => void (m.topic === 'weight' && weights++));
    await waitFor(() => weights > 0, 10_000, 'the scale running');
    const malformed: Array<Record<string, unknown>> = [
      { topic: 'bogus', payload: 1 },
      { topic: 'calibrate', payload: 'abc' },
      { topic: 'calibrate', payload: -1 },
      { topic: 'calibrate', payload: 1e9 }, // over capacity
      { topic: 'power', payload: 'maybe' },
      { payload: { load_g: 10 } }, // no topic
    ];
    await fire('hx', (i) =>
      i % 5 < 2 ? { msg: malformed[i % malformed.length], bad: true } : { msg: { topic: i % 2 ? 'simulate' : 'SIMULATE', payload: { load_g: i % 50 } }, bad: false },
    );
  });

  it('rt-dosing (simulated scale: stop commands and bad targets only, no dose is started)', async () => {
    tmp = tempDir('rt-done-dz-');
    helper.settings({ userDir: tmp.dir });
    await load(
      [scaleNode, hx711Node, dosingNode],
      [
        ...harness('dz'),
        { id: 'sc', type: 'rt-scale', name: 'scale', version: 1, backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 1000 },
        { id: 'hx', z: 'f1', type: 'rt-hx711', version: 1, scale: 'sc', rate: 10, deltaG: 0, wires: [['w']] },
        { id: 'w', z: 'f1', type: 'helper' },
        { id: 'dz', z: 'f1', type: 'rt-dosing', name: 'doser', version: 1, scale: 'sc', coarsePct: 100, finePct: 10, fineBandG: 2, toleranceG: 0.1, maxTimeS: 30, neverExceedG: 0, noProgressG: 0.5, containerDropG: 20, topUps: 0, learnDiv: 4, progressHz: 5, wires: [['res'], []] },
        { id: 'res', z: 'f1', type: 'helper' },
      ],
    );
    let weights = 0;
    (helper.getNode('w') as TestNode).on('input', () => weights++);
    const doses: unknown[] = [];
    (helper.getNode('res') as TestNode).on('input', (m) => doses.push(m.payload));
    await waitFor(() => weights > 0, 10_000, 'the scale running');
    await sleep(500); // the dosing controller configured in the worker
    const malformed: Array<Record<string, unknown>> = [
      { payload: 'lots' },
      { payload: -5 },
      { payload: 0 },
      { payload: 5000 }, // over the 1000 g capacity
      { payload: { recipe: 'x' } }, // no target
      { payload: null },
      { payload: { target: 'NaN' } },
      { payload: '' },
    ];
    const stops: Array<Record<string, unknown>> = [{ topic: 'stop' }, { topic: 'abort' }, { topic: 'STOP', payload: 20 }];
    await fire('dz', (i) => (i % 2 ? { msg: malformed[i % malformed.length], bad: true } : { msg: stops[i % stops.length], bad: false }));
    assert.deepEqual(doses, [], 'no dose ran');
  });

  it('rt-rs485-watch over a pty pair (every input is a query answered with msg.door: none is malformed)', async () => {
    pty = await ptyPair();
    sim = new DoorSim({ path: pty.b });
    await sim.start();
    await load(
      [portNode, watchNode],
      [
        ...harness('w'),
        { id: 'p', type: 'rt-rs485-port', version: 1, path: pty.a, baudRate: 115200, dataBits: 8, parity: 'none', stopBits: 1, backoffMin: 50, backoffMax: 300 },
        { id: 'w', z: 'f1', type: 'rt-rs485-watch', version: 1, port: 'p', mode: 'poll', key: 'door', unit: 1, fn: 2, address: 0, interval: 20, timeout: 50, stall: 500, wires: [['out']] },
        { id: 'out', z: 'f1', type: 'helper' },
      ],
    );
    let answers = 0;
    (helper.getNode('out') as TestNode).on('input', (m) => void (m.topic !== 'door' && answers++));
    await sleep(200);
    // Odd shapes too (refresh not a boolean, payloads of every kind): the node answers each with the
    // latest state, so nothing goes to Catch. One message in 10 asks for a poll now.
    const shapes: Array<Record<string, unknown>> = [{}, { payload: 'x' }, { payload: { a: 1 } }, { refresh: 'yes' }, { payload: null, topic: 42 }];
    await fire('w', (i) => ({ msg: i % 10 === 0 ? { refresh: true } : shapes[i % shapes.length], bad: false }), { mixed: false });
    assert.equal(answers, N, 'one answer per query');
  });
});
