// rt-gate-command in a real Node-RED runtime against a real TCP peer (a child
// process on 127.0.0.1).
import assert from 'node:assert/strict';
import { createServer } from 'node:net';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { type Peer, startPeer } from '../helpers/tcp-peer';
import { freePort, sleep, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const gateNode = require('../../nodes/rt-gate-command/rt-gate-command');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const endpointNode = require('../../nodes/rt-gate-endpoint/rt-gate-endpoint');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

interface R {
  gate: string;
  track_id: unknown;
  result: string;
  reason?: string;
  reason_code?: string;
  reply?: string;
  queue_delay_ms: number;
  send_latency_ms: number;
  total_ms: number;
}
interface TestNode {
  receive(msg: object): void;
  on(ev: string, fn: (msg: Record<string, unknown>) => void): void;
  warn(t: unknown): void;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

function flow(port: number, ep: Record<string, unknown> = {}, cmd: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'gate' },
    { id: 'ep', type: 'rt-gate-endpoint', name: 'gate ctl', version: 1, host: '127.0.0.1', port, template: 'OPEN {gate}\\r\\n', ack: '^OK {gate}$', timeout: 1000, backoffMin: 50, backoffMax: 200, keepAlive: true, ...ep },
    { id: 'gc', z: 'f1', type: 'rt-gate-command', name: 'gate cmd', version: 1, endpoint: 'ep', queueLimit: 64, wires: [['out']], ...cmd },
    { id: 'out', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: ['gc'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
}

const load = (f: object[]): Promise<void> =>
  new Promise((resolve, reject) => helper.load([endpointNode, gateNode, catchNode], f, (err: Error | undefined) => (err ? reject(err) : resolve())));

function results(): R[] {
  const rs: R[] = [];
  (helper.getNode('out') as TestNode).on('input', (m) => rs.push(m.payload as R));
  return rs;
}

describe('rt-gate-command node', function () {
  this.timeout(30_000);
  let peer: Peer | null = null;
  afterEach(async () => {
    await helper.unload();
    if (peer) await peer.stop();
    peer = null;
    await waitFor(() => activeWorkerCount() === 0, 5000, 'no worker left');
  });

  it('sends commands in order with the right bytes and matches acknowledgements', async () => {
    peer = await startPeer('ok', 2);
    await load(flow(peer.port));
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    for (let i = 1; i <= 50; i++) gc.receive({ payload: { gate: `G${i}`, track_id: i } });
    await waitFor(() => rs.length === 50, 10_000, '50 results');
    // the peer reports its lines over its stdout pipe, which may lag the acknowledgements it sent over TCP
    await waitFor(() => peer!.lines.length >= 50, 5_000, 'the peer reported 50 lines').catch(() => undefined);
    assert.deepEqual(
      peer.lines.map((l) => l.line),
      Array.from({ length: 50 }, (_, i) => `OPEN G${i + 1}`),
    );
    assert.ok(rs.every((r) => r.result === 'ok'), JSON.stringify(rs.find((r) => r.result !== 'ok')));
    assert.deepEqual(
      rs.map((r) => r.track_id),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    const bad = rs.find((r) => !(r.send_latency_ms >= 1 && r.total_ms >= r.send_latency_ms && r.queue_delay_ms >= 0));
    assert.equal(bad, undefined, JSON.stringify(bad));
    assert.equal(rs[0].reply, 'OK G1');
  });

  it('a controller that never answers: timeout, then the next command still goes out', async () => {
    peer = await startPeer('silent');
    await load(flow(peer.port, { timeout: 300 }));
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    gc.receive({ payload: { gate: 'A' } });
    await waitFor(() => rs.length === 1, 5000, 'a timeout');
    assert.equal(rs[0].result, 'timeout');
    assert.ok(rs[0].send_latency_ms >= 290, `${rs[0].send_latency_ms}`);
    gc.receive({ payload: { gate: 'B' } });
    await waitFor(() => peer!.lines.length === 2, 5000, 'the next command on the wire');
    assert.equal(peer.lines[1].line, 'OPEN B');
    assert.ok(peer.connections >= 2, 'a new connection after the timeout');
  });

  it('garbage from the controller: that command is an error, the next is sent', async () => {
    peer = await startPeer('garbage');
    await load(flow(peer.port));
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    gc.receive({ payload: { gate: 'A' } });
    gc.receive({ payload: { gate: 'B' } });
    await waitFor(() => rs.length === 2, 5000, 'two results');
    assert.equal(rs[0].result, 'error');
    assert.match(String(rs[0].reason), /unexpected reply|codes\.bad-reply/); // the helper's RED._ gives the catalog key
    assert.equal(rs[0].reason_code, 'bad-reply');
    assert.equal(rs[0].reply, '??? nonsense');
    // the peer reports its lines on its stdout pipe, which may trail its reply on the socket
    await waitFor(() => peer!.lines.length === 2, 5000, 'the peer reported both lines');
    assert.equal(peer.lines[1].line, 'OPEN B');
  });

  it('the link drops mid-stream: every accepted command gets a result, later ones go out after reconnect', async () => {
    peer = await startPeer('close-after:5', 1);
    await load(flow(peer.port, { inflight: 1 }));
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    for (let i = 1; i <= 12; i++) gc.receive({ payload: { gate: `G${i}` } });
    await waitFor(() => rs.length === 12, 10_000, '12 results');
    const byGate = new Map(rs.map((r) => [r.gate, r]));
    assert.equal(byGate.get('G5')!.result, 'error', 'the command in flight when the link dropped');
    assert.match(String(byGate.get('G5')!.reason), /closed|codes\.lost-before-ack/);
    assert.equal(byGate.get('G5')!.reason_code, 'lost-before-ack');
    for (const g of ['G1', 'G2', 'G3', 'G4', 'G6', 'G7', 'G12']) assert.equal(byGate.get(g)!.result, 'ok', g);
    assert.ok(peer.connections >= 2, 'reconnected');
  });

  it('pipelined (8 in flight): a dropped link fails exactly the commands in flight, the rest go out after reconnect', async () => {
    peer = await startPeer('close-after:5', 20);
    await load(flow(peer.port, { inflight: 8 }));
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    for (let i = 1; i <= 12; i++) gc.receive({ payload: { gate: `G${i}` } });
    await waitFor(() => rs.length === 12, 10_000, '12 results');
    const errors = rs.filter((r) => r.result === 'error').map((r) => r.gate);
    const oks = rs.filter((r) => r.result === 'ok').map((r) => r.gate);
    assert.equal(errors.length + oks.length, 12, 'every command has a result');
    assert.ok(errors.includes('G5'), 'the command that was on the wire when the link dropped failed');
    assert.ok(oks.includes('G12'), 'later commands went out after the reconnect');
    assert.ok(peer.connections >= 2);
  });

  it('queue full: exactly the excess is dropped, counted, answered and warned about once', async () => {
    peer = await startPeer('ok', 200);
    await load(flow(peer.port, {}, { queueLimit: 5 }));
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    const warnings: string[] = [];
    gc.warn = (t: unknown) => warnings.push(String(t));
    const t0 = process.hrtime.bigint();
    for (let i = 1; i <= 20; i++) gc.receive({ payload: { gate: `G${i}` } });
    const handlerUs = Number(process.hrtime.bigint() - t0) / 1000;
    await waitFor(() => rs.filter((r) => r.result === 'dropped').length === 15, 5000, '15 dropped results');
    assert.deepEqual(
      rs.filter((r) => r.result === 'dropped').map((r) => r.gate),
      Array.from({ length: 15 }, (_, i) => `G${i + 6}`),
      'the newest are dropped',
    );
    assert.equal(warnings.filter((w) => /dropWarn|dropped/.test(w)).length, 1);
    await waitFor(() => rs.filter((r) => r.result === 'ok').length === 5, 10_000, 'the 5 queued ones');
    assert.ok(handlerUs < 1_000_000, 'the flow never blocked');
  });

  it('with the flow engine blocked 500 ms right after enqueuing, the commands still reach the peer at once', async () => {
    peer = await startPeer('ok', 1);
    await load(flow(peer.port));
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    gc.receive({ payload: { gate: 'warm' } });
    await waitFor(() => rs.length === 1, 5000, 'connected');
    const enq: number[] = [];
    for (let i = 0; i < 5; i++) {
      enq.push(nowUs());
      gc.receive({ payload: { gate: `B${i}` } });
    }
    const end = Date.now() + 500;
    while (Date.now() < end) {
      /* busy: the flow engine is blocked */
    }
    await waitFor(() => peer!.lines.length === 6, 5000, 'lines at the peer');
    const delays = peer.lines.slice(1).map((l, i) => (l.atUs - enq[i]) / 1000);
    // Sequential with a 1 ms ack each: all five well before the block ends.
    assert.ok(Math.max(...delays) < 250, `enqueue-to-wire delays while blocked: ${delays.map((d) => d.toFixed(1)).join(', ')} ms`);
  });

  it('a controller that is down: one warning for the outage, not one per reconnect attempt; a log line when it is back', async () => {
    // The Node prototype's warn/log, so nothing said before the test could hook the node is missed.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const NodeProto = (require('@node-red/runtime/lib/nodes/Node') as { prototype: Record<string, (this: { id: string }, m: unknown) => void> }).prototype;
    const { warn, log } = NodeProto;
    const said: string[] = [];
    NodeProto.warn = function (m) {
      if (this.id === 'gc') said.push(`warn ${String(m)}`);
      return warn.call(this, m);
    };
    NodeProto.log = function (m) {
      if (this.id === 'gc') said.push(`log ${String(m)}`);
      return log.call(this, m);
    };
    const server = createServer((sock) => sock.on('error', () => undefined));
    try {
      const port = await freePort(); // nothing listens there yet
      await load(flow(port, { backoffMin: 20, backoffMax: 40 }));
      await sleep(1500); // some 40 reconnect attempts
      assert.equal(said.filter((x) => /linkDown/.test(x)).length, 1, said.join('\n'));
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
      await waitFor(() => said.some((x) => /^log .*linkUp/.test(x)), 5000, 'the link is up again (logged)');
      assert.equal(said.filter((x) => /linkDown/.test(x)).length, 1, 'no further warning');
    } finally {
      NodeProto.warn = warn;
      NodeProto.log = log;
      await helper.unload();
      await new Promise((r) => server.close(r));
    }
  });

  it('bad input goes to Catch: no gate, a missing template field, an oversize command', async () => {
    peer = await startPeer('ok', 1);
    await load(flow(peer.port, { template: 'OPEN {gate} FOR {track_id}\\r\\n', ack: '^OK' }));
    const caught: string[] = [];
    const codes: string[] = [];
    (helper.getNode('caught') as TestNode).on('input', (m) => {
      caught.push(String((m.error as { message: string }).message));
      codes.push(String((m.error as { code?: string }).code));
    });
    const rs = results();
    const gc = helper.getNode('gc') as TestNode;
    gc.receive({ payload: { track_id: 1 } });
    gc.receive({ payload: { gate: 'G1' } });
    gc.receive({ payload: { gate: 'G1', track_id: 'x'.repeat(2000) } });
    gc.receive({ payload: { gate: 'G2', track_id: 7 } });
    await waitFor(() => caught.length === 3 && rs.length === 1, 5000, 'three errors and one result');
    // worded from the catalog by code (the helper's RED._ gives the key); the code reaches the Catch node
    assert.match(caught[0], /gate id|codes\.no-gate/);
    assert.match(caught[1], /\{track_id\}|codes\.missing-field/);
    assert.match(caught[2], /bytes|codes\.oversize/);
    assert.deepEqual(codes, ['no-gate', 'missing-field', 'oversize']);
    assert.equal(rs[0].result, 'ok');
    // the peer reports its lines on its stdout pipe, which may trail its reply on the socket (CI saw none yet)
    await waitFor(() => peer!.lines.length >= 1, 5000, 'the peer reported the line');
    assert.equal(peer.lines.length, 1, 'only the good command went out');
    assert.equal(peer.lines[0].line, 'OPEN G2 FOR 7');
  });

  it('redeploy closes the socket and the worker', async () => {
    peer = await startPeer('ok', 1);
    await load(flow(peer.port));
    const rs = results();
    (helper.getNode('gc') as TestNode).receive({ payload: { gate: 'A' } });
    await waitFor(() => rs.length === 1, 5000, 'a result');
    await helper.unload();
    await waitFor(() => peer!.closes >= 1, 5000, 'the peer sees the socket closed');
    assert.equal(activeWorkerCount(), 0);
    await sleep(50);
  });

  it('a missing endpoint is a clear error, not a crash', async () => {
    await load([
      { id: 'f1', type: 'tab' },
      { id: 'gc', z: 'f1', type: 'rt-gate-command', version: 1, endpoint: '', queueLimit: 64, wires: [[]] },
      { id: 'c1', z: 'f1', type: 'catch', scope: ['gc'], uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'f1', type: 'helper' },
    ]);
    const caught: string[] = [];
    (helper.getNode('caught') as TestNode).on('input', (m) => caught.push(String((m.error as { message: string }).message)));
    (helper.getNode('gc') as TestNode).receive({ payload: { gate: 'A' } });
    await waitFor(() => caught.length === 1, 2000, 'an error');
    assert.match(caught[0], /notConfigured|Not configured/);
  });
});

