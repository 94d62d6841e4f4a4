// rt-control-plant in a real Node-RED runtime (node-red-node-test-helper):
// dashboard-style requests (msg.topic, no msg.res) answered on output 3, a
// non-API message reaches a Catch node and the node keeps working, safety
// cut-outs end to end through the worker (test hook), telemetry on output 2
// only while logging, and close ends the worker thread with the plant off.
import assert from 'node:assert/strict';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { sleep, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const plantNode = require('../../nodes/rt-control-plant/rt-control-plant');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

type Msg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Msg) => void): void;
  removeListener(ev: string, fn: (msg: Msg) => void): void;
}

const FLOW = [
  { id: 't', type: 'tab' },
  { id: 'p', z: 't', type: 'rt-control-plant', version: 1, tickMs: 10, logMs: 50, uiMs: 250, wires: [['reply'], ['log'], ['state']] },
  { id: 'reply', z: 't', type: 'helper' },
  { id: 'log', z: 't', type: 'helper' },
  { id: 'state', z: 't', type: 'helper' },
  { id: 'c', z: 't', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
  { id: 'caught', z: 't', type: 'helper' },
];

describe('rt-control-plant node', function () {
  this.timeout(30_000);
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.settings({});
    helper.stopServer(done);
  });
  afterEach(async () => {
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'the plant worker ended');
  });

  const load = async (flow: object[] = FLOW): Promise<void> => {
    helper.settings({ rtEdgeTestHooks: true });
    await helper.load([plantNode, catchNode], flow);
    // ready: the worker has published its first state
    const p = helper.getNode('p') as TestNode;
    const state = helper.getNode('state') as TestNode;
    await waitFor(async () => (await replyTo(p, state, { topic: 'status' })).statusCode === 200, 10_000, 'the plant answers');
  };
  const replyTo = (p: TestNode, state: TestNode, msg: object): Promise<Msg> =>
    new Promise((resolve) => {
      const on = (m: Msg): void => {
        if (m.topic === 'reply') {
          state.removeListener('input', on);
          resolve(m);
        }
      };
      state.on('input', on);
      p.receive(msg);
    });

  it('answers requests without msg.res on output 3 (topic reply): control, status, gpio', async () => {
    await load();
    const p = helper.getNode('p') as TestNode;
    const state = helper.getNode('state') as TestNode;
    const reply = helper.getNode('reply') as TestNode;
    let onReply = 0;
    reply.on('input', () => onReply++);
    const s = await new Promise<Msg>((r) => {
      const on = (m: Msg): void => {
        if (m.topic !== 'state') return;
        state.removeListener('input', on);
        r(m);
      };
      state.on('input', on);
    });
    assert.equal(s.payload.heaters.length, 2);
    assert.equal(typeof s.payload.status.uptime_s, 'number');
    const ok = await replyTo(p, state, { topic: 'control', payload: { rpm: 900 } });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.payload.setpoints.rpm, 900);
    const bad = await replyTo(p, state, { topic: 'control', payload: { rpm: 9000 } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.payload.field, 'rpm');
    const g = await replyTo(p, state, { topic: 'gpio', payload: { pin: 'relay2', value: true } });
    assert.equal(g.statusCode, 200);
    assert.equal(g.payload.pins.relay2, true);
    const st = await replyTo(p, state, { topic: 'status' });
    assert.equal(st.payload.writes, 1, 'one control write applied; the refused one was not');
    assert.equal(onReply, 0, 'nothing on the HTTP reply output without msg.res');
  });

  it('writes handed over in one turn reach the worker as one batch: each answered, applied in order, one publish', async () => {
    // a slow tick (1 s), so the publishes counted below are the writes' own
    await load(FLOW.map((n) => (n.id === 'p' ? { ...n, tickMs: 1000 } : n)));
    const p = helper.getNode('p') as TestNode;
    const state = helper.getNode('state') as TestNode;
    const before = (await replyTo(p, state, { topic: 'status' })).payload;
    const replies: Msg[] = [];
    const all = new Promise<void>((resolve) => {
      const on = (m: Msg): void => {
        if (m.topic !== 'reply') return;
        replies.push(m);
        if (replies.length === 20) {
          state.removeListener('input', on);
          resolve();
        }
      };
      state.on('input', on);
    });
    // 16 control writes (rpm 100..118) and 4 relay writes, all in one turn of the loop
    for (let i = 0; i < 20; i++) p.receive(i % 5 === 4 ? { topic: 'gpio', payload: { pin: 'relay1', value: i % 2 === 0 } } : { topic: 'control', payload: { rpm: 100 + i } });
    await all;
    assert.deepEqual(
      replies.map((r) => r.statusCode),
      new Array(20).fill(200),
    );
    assert.deepEqual(
      replies.filter((r) => r.payload.setpoints).map((r) => r.payload.applied.rpm),
      [100, 101, 102, 103, 105, 106, 107, 108, 110, 111, 112, 113, 115, 116, 117, 118],
    );
    const after = (await replyTo(p, state, { topic: 'status' })).payload;
    assert.equal(after.writes - before.writes, 16, 'each control write applied once');
    // one publish (plant tick) for the batch, plus at most a timer tick or two: one per write would be 20
    assert.ok(after.ticks - before.ticks <= 3, `ticks ${before.ticks} -> ${after.ticks}`);
    const d = await replyTo(p, state, { topic: 'data' });
    assert.equal(d.payload.motor.rpm_set, 118, 'the last write wins: order kept');
    const g = await replyTo(p, state, { topic: 'gpio-get' });
    assert.equal(g.payload.pins.relay1, false, 'the last relay write (value false) wins');
  });

  it('a message that is no API request reaches a Catch node; the node keeps answering', async () => {
    await load();
    const p = helper.getNode('p') as TestNode;
    const state = helper.getNode('state') as TestNode;
    const caught = helper.getNode('caught') as TestNode;
    const got = new Promise<Msg>((r) => caught.on('input', r));
    p.receive({ topic: 'reboot', payload: 1 });
    const e = await got;
    assert.match(String(e.error.message), /Not a control API request|unknownOp/);
    await sleep(50);
    const st = await replyTo(p, state, { topic: 'data' });
    assert.equal(st.statusCode, 200);
  });

  it('safety end to end: an over-temperature cuts the heater, an overspeed stops the motor (warned, status fault)', async () => {
    await load();
    const p = helper.getNode('p') as TestNode & { warn: (t: unknown) => void };
    const state = helper.getNode('state') as TestNode;
    const warnings: string[] = [];
    const w = p.warn.bind(p);
    p.warn = (t: unknown) => {
      warnings.push(String(t));
      w(t);
    };
    p.receive({ topic: 'disturb', payload: { tempC: [275] } });
    await waitFor(async () => (await replyTo(p, state, { topic: 'status' })).payload.safety.over_temp[0] === true, 5000, 'over-temp flag');
    const d = await replyTo(p, state, { topic: 'data' });
    assert.equal(d.payload.heaters[0].duty_pct, 0, 'heater 1 cut');
    const st = await replyTo(p, state, { topic: 'status' });
    assert.equal(st.payload.state, 'fault');
    await replyTo(p, state, { topic: 'control', payload: { rpm: 1000 } });
    p.receive({ topic: 'disturb', payload: { rpm: 2500 } });
    await waitFor(async () => (await replyTo(p, state, { topic: 'status' })).payload.safety.overspeed === true, 5000, 'overspeed flag');
    assert.equal((await replyTo(p, state, { topic: 'data' })).payload.motor.rpm_set, 0, 'motor stopped');
    await waitFor(() => warnings.some((t) => /Over-temperature|overTemp/.test(t)) && warnings.some((t) => /Overspeed|overspeed/.test(t)), 5000, 'both warned');
  });

  it('telemetry on output 2 only while logging; toggles are idempotent', async () => {
    await load();
    const p = helper.getNode('p') as TestNode;
    const state = helper.getNode('state') as TestNode;
    const log = helper.getNode('log') as TestNode;
    let n = 0;
    log.on('input', (m) => {
      assert.equal(m.payload.temps_c.length, 2);
      n++;
    });
    await sleep(300);
    assert.equal(n, 0);
    assert.equal((await replyTo(p, state, { topic: 'log/start' })).payload.changed, true);
    assert.equal((await replyTo(p, state, { topic: 'log/start' })).payload.changed, false);
    await sleep(500);
    assert.ok(n >= 5 && n <= 15, `about 10 records in 0.5 s at 50 ms: ${n}`);
    assert.equal((await replyTo(p, state, { topic: 'log/stop' })).payload.changed, true);
    const at = n;
    await sleep(300);
    assert.equal(n, at, 'no record after stop');
  });
});
