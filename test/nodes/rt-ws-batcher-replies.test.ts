// Replies to one client, end to end with the shipped client module (in Node,
// given the `ws` constructor) against the real node in a real Node-RED: the
// page reads its id (`client.id`, from the hello frame), sends it with an HTTP
// request, the flow answers with msg._session = {id}, and only that client
// gets the answer (a `direct` event); the other page gets nothing, both keep
// getting the broadcast batches. A reconnect gets a new id.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import WebSocket from 'ws';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, sleep, waitFor } from '../helpers/util';

/* eslint-disable @typescript-eslint/no-explicit-any */
const clientDir = join(__dirname, '..', '..', 'nodes', 'rt-ws-batcher', 'client');
const loadClient = (): Promise<any> => import(join(clientDir, 'rt-ws-client.js'));

const PATH = '/ws/replies';

function flows(): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'replies' },
    // POST /ask {id, q}: the answer goes to that client only.
    { id: 'ask', z: 'f1', type: 'http in', url: '/ask', method: 'post', wires: [['answer', 'ok']] },
    { id: 'answer', z: 'f1', type: 'function', outputs: 1, func: `return { topic: 'answer', payload: { q: msg.payload.q, a: msg.payload.q * 2 }, _session: { type: 'websocket', id: msg.payload.id } };`, wires: [['wb']] },
    { id: 'ok', z: 'f1', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'ok', tot: 'str' }], wires: [['res']] },
    { id: 'res', z: 'f1', type: 'http response', wires: [] },
    // POST /all: one broadcast message.
    { id: 'all', z: 'f1', type: 'http in', url: '/all', method: 'post', wires: [['bc', 'ok']] },
    { id: 'bc', z: 'f1', type: 'change', rules: [{ t: 'set', p: 'topic', pt: 'msg', to: 'news', tot: 'str' }], wires: [['wb']] },
    { id: 'wb', z: 'f1', type: 'rt-ws-batcher', version: 1, mode: 'shared', path: PATH, batchSize: 100, delayMs: 16, capKb: 1024, graceS: 10, ringBatches: 256, deflateThreshold: 0, replies: 'session', wires: [[]] },
  ];
}

describe('rt-ws-batcher replies to one client (client module, real Node-RED)', function () {
  this.timeout(60_000);
  let rt: ChildRuntime;
  const open: any[] = [];

  before(async () => {
    rt = await startNodeRed({ flows: flows() });
  });
  after(async () => {
    for (const c of open) c.close();
    await rt?.kill();
    rt?.cleanup();
  });

  it('client.id from hello; msg._session.id answers that client only (direct event); broadcasts still reach both', async () => {
    const { RtWsClient } = await loadClient();
    const mk = (): any => {
      const c = new RtWsClient({ url: `ws://127.0.0.1:${rt.port}${PATH}`, WebSocket, storage: null, pingMs: 0 });
      const got = { direct: [] as any[], batch: [] as any[] };
      c.on('direct', (d: any) => got.direct.push(...d.items));
      c.on('batch', (b: any) => got.batch.push(...(b.items ?? [])));
      c.connect();
      open.push(c);
      return { c, got };
    };
    const a = mk();
    const b = mk();
    await waitFor(() => a.c.id && b.c.id, 10_000, 'both clients have their id');
    assert.match(a.c.id, /^[0-9a-f]{16}$/);
    assert.notEqual(a.c.id, b.c.id);

    for (let q = 1; q <= 3; q++) assert.equal((await rt.post('/ask', { id: a.c.id, q })).status, 200);
    assert.equal((await rt.post('/ask', { id: b.c.id, q: 10 })).status, 200);
    assert.equal((await rt.post('/all', { hello: 'everyone' })).status, 200);
    await waitFor(() => a.got.direct.length >= 3 && b.got.direct.length >= 1, 5000, 'the answers');
    await waitFor(() => a.got.batch.length >= 1 && b.got.batch.length >= 1, 5000, 'the broadcast');
    await sleep(200);
    assert.deepEqual(a.got.direct.map((i: any) => i.payload), [{ q: 1, a: 2 }, { q: 2, a: 4 }, { q: 3, a: 6 }]);
    assert.deepEqual(b.got.direct.map((i: any) => i.payload), [{ q: 10, a: 20 }]);
    for (const x of [a, b]) {
      assert.deepEqual(x.got.batch.map((i: any) => i.topic), ['news'], 'answers are not in the broadcast batches');
      assert.equal(x.c.stats.unexpectedGaps, 0, 'direct frames do not touch the sequence');
    }

    // A new connection is a new id: the old one no longer receives.
    const old = a.c.id;
    a.c.close();
    const a2 = mk();
    await waitFor(() => a2.c.id, 10_000, 'the new connection');
    assert.notEqual(a2.c.id, old);
    assert.equal((await rt.post('/ask', { id: old, q: 5 })).status, 200);
    assert.equal((await rt.post('/ask', { id: a2.c.id, q: 6 })).status, 200);
    await waitFor(() => a2.got.direct.length >= 1, 5000, 'the answer on the new id');
    await sleep(200);
    assert.deepEqual(a2.got.direct.map((i: any) => i.payload), [{ q: 6, a: 12 }]);
    const m = /rtedge_ws_direct_unknown_client_total\{node="wb"\} (\d+)/.exec((await rt.get('/metrics')).text);
    assert.equal(Number(m?.[1]), 1, 'the answer to the closed id is counted');
  });

  it('example 03 (Reply to one page): its page loads the client module; an answer reaches the asking client only', async () => {
    const flows = JSON.parse(readFileSync(join(repoRoot, 'examples', 'rt-ws-batcher', '03 - Reply to one page.json'), 'utf8')) as object[];
    await rt.deploy(flows);
    const page = await waitFor(async () => {
      const r = await rt.get('/ws-reply-demo');
      return r.status === 200 ? r.text : '';
    }, 10_000, 'the page');
    assert.match(page, /client\.js/);
    assert.match(page, /client\.id/);
    const { RtWsClient } = await loadClient();
    const mk = (): any => {
      const c = new RtWsClient({ url: `ws://127.0.0.1:${rt.port}/ws/replies`, WebSocket, storage: null, pingMs: 0 });
      const got = { direct: [] as any[], ticks: 0 };
      c.on('direct', (d: any) => got.direct.push(...d.items));
      c.on('batch', (b: any) => (got.ticks += b.items?.length ?? 0));
      c.connect();
      open.push(c);
      return { c, got };
    };
    const a = mk();
    const b = mk();
    await waitFor(() => a.c.id && b.c.id, 10_000, 'ids');
    assert.equal((await rt.post('/ws-reply-demo/ask', { id: a.c.id, q: 21 })).status, 200);
    await waitFor(() => a.got.direct.length >= 1, 5000, 'the answer');
    assert.equal(a.got.direct[0].payload.answer, 42);
    await waitFor(() => b.got.ticks >= 1, 5000, 'a broadcast tick at B');
    assert.equal(b.got.direct.length, 0, 'B was not asked');
  });
});
