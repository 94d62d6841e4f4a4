// rt-journey-tracker in a real Node-RED runtime (node-red-node-test-helper):
// messages as rt-mqtt-ingress delivers them, the door in flow context as
// rt-rs485-watch writes it, Catch and Complete nodes, redeploys.
import assert from 'node:assert/strict';

import { sleep, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const trackerNode = require('../../nodes/rt-journey-tracker/rt-journey-tracker');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const completeNode = require('@node-red/nodes/core/common/24-complete.js');

helper.init(require.resolve('node-red'));

type Msg = Record<string, unknown> & { payload: Record<string, unknown>; topic?: string };
interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Msg) => void): void;
  context(): { flow: { set(k: string, v: unknown): void } };
}

function flow(extra: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'tracker' },
    {
      id: 'tr',
      z: 'f1',
      type: 'rt-journey-tracker',
      version: 1,
      storeZones: 'store',
      posZones: 'pos-1, pos-2',
      gateZone: 'gate',
      entryLine: 'entry',
      exitLine: 'exit',
      gate: 'G7',
      doorKey: 'door',
      ttl: 30000,
      stitchMs: 300,
      stitchM: 1,
      maxTracks: 1000,
      authSlack: 2000,
      authHold: 500,
      reopen: 3000,
      wires: [['gates'], ['journeys'], ['events']],
      ...extra,
    },
    { id: 'gates', z: 'f1', type: 'helper' },
    { id: 'journeys', z: 'f1', type: 'helper' },
    { id: 'events', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: ['tr'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
    { id: 'cp', z: 'f1', type: 'complete', scope: ['tr'], uncaught: false, wires: [['completed']] },
    { id: 'completed', z: 'f1', type: 'helper' },
  ];
}

const load = (f: object[]): Promise<void> =>
  new Promise((resolve, reject) => {
    helper.load([trackerNode, catchNode, completeNode], f, (err: Error | undefined) => (err ? reject(err) : resolve()));
  });

interface Seen {
  gates: Msg[];
  journeys: Msg[];
  events: Msg[];
  caught: Msg[];
  completed: number;
}

function watch(): Seen {
  const s: Seen = { gates: [], journeys: [], events: [], caught: [], completed: 0 };
  (helper.getNode('gates') as TestNode).on('input', (m) => s.gates.push(m));
  (helper.getNode('journeys') as TestNode).on('input', (m) => s.journeys.push(m));
  (helper.getNode('events') as TestNode).on('input', (m) => s.events.push(m));
  (helper.getNode('caught') as TestNode).on('input', (m) => s.caught.push(m));
  (helper.getNode('completed') as TestNode).on('input', () => s.completed++);
  return s;
}

let seq = 0;
const ev = (type: string, track: string, extra: Record<string, unknown> = {}): object => ({
  topic: 'store/s1/events',
  source: 'sensor',
  kind: 'event',
  payload: { seq: ++seq, ts: Date.now(), sensor: 's1', type, track, ...extra },
  ingress: { seq, received: Date.now() },
});
const auth = (id: string, pos: string, count: number): object => ({ topic: 'store/acc', source: 'acc', kind: 'auth', payload: { id, ts: Date.now(), pos, count } });

describe('rt-journey-tracker node', function () {
  this.timeout(30_000);
  afterEach(async () => {
    await helper.unload();
  });

  it('an authorised shopper: one gate command (door closed in flow context), one complete journey, business events', async () => {
    await load(flow());
    const s = watch();
    const tr = helper.getNode('tr') as TestNode;
    tr.context().flow.set('door', { state: 'closed', since: Date.now(), ts: Date.now() });
    const msgs = [
      ev('track-create', 't1', { x: 1, y: 1 }),
      ev('zone-enter', 't1', { zone: 'store' }),
      ev('zone-exit', 't1', { zone: 'store' }),
      ev('zone-enter', 't1', { zone: 'pos-1' }),
      auth('a1', 'pos-1', 1),
      ev('zone-exit', 't1', { zone: 'pos-1' }),
      ev('zone-enter', 't1', { zone: 'gate' }),
      ev('line-forward', 't1', { line: 'exit' }),
      ev('track-delete', 't1'),
    ];
    for (const m of msgs) tr.receive(m);
    await waitFor(() => s.journeys.length === 1 && s.completed === msgs.length, 5000, 'journey');
    assert.deepEqual(
      s.gates.map((m) => m.payload),
      [{ gate: 'G7', track_id: 't1' }],
    );
    const j = s.journeys[0].payload;
    assert.equal(j.outcome, 'complete');
    assert.equal(j.auth, 'a1');
    assert.equal(j.gate_opened, true);
    const topics = s.events.map((m) => m.topic);
    assert.deepEqual(topics, ['door-change', 'auth-matched', 'gate-open', 'journey-complete']);
    assert.equal(s.caught.length, 0);
    await sleep(600);
    assert.equal(s.journeys.length, 1, 'the delete after the exit line made no second journey');
  });

  it('door open in flow context: no command; the door closing (msg.door) sends it; unauthorised entry is blocked', async () => {
    await load(flow());
    const s = watch();
    const tr = helper.getNode('tr') as TestNode;
    tr.context().flow.set('door', { state: 'open', since: Date.now(), ts: Date.now() });
    for (const m of [ev('track-create', 'a', { x: 1, y: 1 }), ev('zone-enter', 'a', { zone: 'pos-2' }), auth('k', 'pos-2', 1), ev('zone-enter', 'a', { zone: 'gate' })]) tr.receive(m);
    tr.receive(ev('track-create', 'b', { x: 5, y: 5 }));
    tr.receive(ev('zone-enter', 'b', { zone: 'gate' }));
    await waitFor(() => s.completed === 6, 5000, 'six done');
    assert.equal(s.gates.length, 0);
    assert.ok(s.events.some((m) => m.topic === 'gate-blocked' && m.payload.track === 'b' && m.payload.reason === 'gate entry not authorized'));
    // rt-rs485-watch's change message, wired straight in: door only, no kind
    tr.context().flow.set('door', { state: 'closed', since: Date.now(), ts: Date.now() });
    tr.receive({ topic: 'door', payload: { state: 'closed' }, door: { state: 'closed', since: Date.now(), ts: Date.now() } });
    await waitFor(() => s.gates.length === 1, 5000, 'gate after the door closed');
    assert.deepEqual(s.gates[0].payload, { gate: 'G7', track_id: 'a' });
    assert.equal(s.caught.length, 0);
  });

  it('bad input reaches a Catch node with a code, done() once per message, and the next message is processed', async () => {
    await load(flow());
    const s = watch();
    const tr = helper.getNode('tr') as TestNode;
    tr.receive({ kind: 'bogus', payload: {} });
    tr.receive({ kind: 'event', payload: 'not json' });
    tr.receive({ kind: 'event', payload: { type: 'zone-enter', track: 't1' } });
    tr.receive({ kind: 'auth', payload: { id: 'a', pos: 'pos-9', count: 1 } });
    tr.receive(ev('track-create', 't1', { x: 1, y: 1 }));
    tr.receive(ev('line-backward', 't1', { line: 'entry' }));
    await waitFor(() => s.caught.length === 4 && s.journeys.length === 1, 5000, 'errors and journey');
    const codes = s.caught.map((m) => (m.error as { code: string }).code);
    assert.deepEqual(codes, ['bad-kind', 'not-object', 'no-zone', 'unknown-pos']);
    assert.match(String((s.caught[0].error as { message: string }).message), /codes\.bad-kind|msg\.kind must be frame, event or auth/); // the helper words no catalog: the key
    assert.equal(s.journeys[0].payload.outcome, 'returned-entry');
    await sleep(100);
    assert.equal(s.completed, 2, 'Complete sees the two good messages; the four bad ones went to Catch');
  });

  it('done() exactly once per message over 1000 messages (events, frames, auths, bad ones)', async () => {
    await load(flow());
    const s = watch();
    const tr = helper.getNode('tr') as TestNode;
    for (let i = 0; i < 1000; i++) {
      const id = `t${i % 50}`;
      const k = i % 5;
      if (k === 0) tr.receive(ev('zone-enter', id, { zone: 'store' }));
      else if (k === 1) tr.receive({ kind: 'frame', payload: { frame: i, ts: Date.now(), sensor: 's1', objects: [{ id, x: 1, y: 2, z: 1.7 }] } });
      else if (k === 2) tr.receive(auth(`a${i}`, 'pos-1', 1));
      else if (k === 3) tr.receive({ kind: 'event', payload: { type: 'nonsense', track: id } });
      else tr.receive(ev('zone-exit', id, { zone: 'store' }));
    }
    await waitFor(() => s.completed + s.caught.length === 1000, 10_000, '1000 done');
    await sleep(200);
    assert.equal(s.caught.length, 200);
    assert.equal(s.completed, 800);
  });

  it('time passes without input: TTL ends journeys lost, deleted tracks end after the stitch window, auths unmatched', async () => {
    await load(flow({ ttl: 400 }));
    const s = watch();
    const tr = helper.getNode('tr') as TestNode;
    tr.receive(ev('track-create', 'silent', { x: 1, y: 1 }));
    tr.receive(ev('track-create', 'g', { x: 9, y: 9 }));
    tr.receive(ev('zone-enter', 'g', { zone: 'gate' }));
    tr.receive(ev('track-delete', 'g'));
    tr.receive(auth('nobody', 'pos-1', 2));
    await waitFor(() => s.journeys.length === 2 && s.events.some((m) => m.topic === 'auth-unmatched'), 5000, 'tick outputs');
    assert.deepEqual(s.journeys.map((m) => [m.payload.tracks, m.payload.outcome]).sort(), [
      [['g'], 'exit-inferred'],
      [['silent'], 'lost'],
    ]);
  });

  it('a config outside its limits: red status, an error, and every input refused to Catch', async () => {
    await load(flow({ ttl: 5, posZones: '' }));
    const s = watch();
    (helper.getNode('tr') as TestNode).receive(ev('track-create', 't1'));
    await waitFor(() => s.caught.length === 1, 5000, 'refused');
    assert.match(String((s.caught[0].error as { message: string }).message), /errors\.notConfigured|Not configured/);
  });

  it('a redeploy with the same zones keeps the journeys in progress: an authorisation given before it opens the gate after it', async () => {
    await load(flow());
    let s = watch();
    let tr = helper.getNode('tr') as TestNode;
    tr.context().flow.set('door', { state: 'closed', since: Date.now(), ts: Date.now() });
    for (const m of [ev('track-create', 'r1', { x: 1, y: 1 }), ev('zone-enter', 'r1', { zone: 'store' }), ev('zone-exit', 'r1', { zone: 'store' }), ev('zone-enter', 'r1', { zone: 'pos-1' }), auth('a9', 'pos-1', 1)]) tr.receive(m);
    await waitFor(() => s.events.some((m) => m.topic === 'auth-matched'), 5000, 'matched before the redeploy');
    await helper.setFlows(flow({ ttl: 20000 }), 'full'); // other timings, same layout: every node restarts
    s = watch();
    tr = helper.getNode('tr') as TestNode;
    for (const m of [ev('zone-exit', 'r1', { zone: 'pos-1' }), ev('zone-enter', 'r1', { zone: 'gate' }), ev('line-forward', 'r1', { line: 'exit' })]) tr.receive(m);
    await waitFor(() => s.journeys.length === 1, 5000, 'journey after the redeploy');
    assert.deepEqual(
      s.gates.map((m) => m.payload),
      [{ gate: 'G7', track_id: 'r1' }],
    );
    assert.equal(s.journeys[0].payload.outcome, 'complete');
    assert.equal(s.journeys[0].payload.auth, 'a9');
    assert.ok(!s.events.some((m) => m.topic === 'gate-blocked'), 'not blocked as an unknown track');
  });

  it('a redeploy with other zones ends the journeys in progress (lost), sent once the flows have started', async () => {
    await load(flow());
    const s0 = watch();
    const tr = helper.getNode('tr') as TestNode;
    tr.receive(ev('track-create', 'z1', { x: 1, y: 1 }));
    tr.receive(ev('zone-enter', 'z1', { zone: 'store' }));
    await waitFor(() => s0.completed === 2, 5000, 'taken in');
    // the helper nodes are watched as soon as they exist: the tracker sends at flows:started, before setFlows resolves
    const s: Seen = { gates: [], journeys: [], events: [], caught: [], completed: 0 };
    const grab = (): void => {
      const j = helper.getNode('journeys') as TestNode | null;
      if (j) j.on('input', (m) => s.journeys.push(m));
      else setImmediate(grab);
    };
    const started = helper.setFlows(flow({ posZones: 'pos-1, pos-3' }), 'full');
    setImmediate(grab);
    await started;
    await waitFor(() => s.journeys.length === 1, 5000, 'the ended journey');
    assert.deepEqual(s.journeys[0].payload.tracks, ['z1']);
    assert.equal(s.journeys[0].payload.outcome, 'lost');
    assert.equal(s0.journeys.length, 0, 'the old node sent nothing');
  });

  it('a redeploy into a settings error drops the journeys in progress with a warning', async () => {
    await load(flow());
    const s = watch();
    const tr = helper.getNode('tr') as TestNode;
    tr.receive(ev('track-create', 'b1', { x: 1, y: 1 }));
    tr.receive(ev('track-create', 'b2', { x: 5, y: 5 }));
    await waitFor(() => s.completed === 2, 5000, 'taken in');
    await helper.setFlows(flow({ ttl: 5 }), 'full');
    const warned = (): string[] =>
      (helper.log().args as Array<[{ level: number; msg: unknown }]>)
        .map((a) => a[0])
        .filter((l) => l.level === 30 && /journeys in progress dropped|droppedBadConfig/.test(String(l.msg)))
        .map((l) => String(l.msg));
    await waitFor(() => warned().length === 1, 5000, 'the warning');
  });

  it('redeploys leave no tick timer behind', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    for (let i = 0; i < 10; i++) {
      await load(flow());
      await helper.unload();
    }
    await sleep(200);
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    assert.ok(after <= before + 1, `timeouts ${before} -> ${after}`);
  });
  it('a flood of frames and events: the status text is translated when the track count changes, not per message', async () => {
    // RED._ counted per key: before, every input message translated the status text (i18next), which was
    // most of the flow engine's CPU under the store-gate flood (docs/benchmarks.md#store-gate).
    const keys = new Map<string, number>();
    const counting = (RED: { _: (k: string, p?: object) => string }): unknown => {
      const orig = RED._;
      RED._ = (k: string, p?: object): string => {
        keys.set(k, (keys.get(k) ?? 0) + 1);
        return orig.call(RED, k, p);
      };
      return trackerNode(RED);
    };
    await new Promise<void>((resolve, reject) => {
      helper.load([counting, catchNode, completeNode], flow(), (err: Error | undefined) => (err ? reject(err) : resolve()));
    });
    const s = watch();
    const tr = helper.getNode('tr') as TestNode;
    tr.receive(ev('track-create', 'f1', { x: 1, y: 2 }));
    for (let i = 0; i < 300; i++) {
      tr.receive({ kind: 'frame', payload: { frame: i, ts: Date.now(), sensor: 's1', objects: [{ id: 'f1', x: 1 + i / 1000, y: 2, z: 1.7 }] } });
      if (i % 3 === 0) tr.receive(ev('zone-enter', 'f1', { zone: 'store' }));
    }
    tr.receive(ev('track-create', 'f2', { x: 5, y: 2 }));
    await waitFor(() => s.completed >= 402, 10_000);
    const shown = keys.get('rt-journey-tracker.status.tracks') ?? 0;
    // 0 tracks at start, 1, then 2 (and a tick at most re-checks the same count): not one per message
    assert.ok(shown >= 2 && shown <= 4, `status text translated ${shown} times for 402 messages`);
    assert.equal(s.caught.length, 0);
  });
});
