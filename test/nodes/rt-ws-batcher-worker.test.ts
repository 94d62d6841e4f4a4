// rt-ws-batcher in worker mode in a real Node-RED runtime: its own port served
// from a worker thread, the client module there, messages from the flow, the
// direct source (a simulated rt-scale's samples straight from the HAL worker)
// still reaching a ws client while the flow engine is blocked for 1 s, and the
// Dashboard mode output (point arrays at a bounded rate); the worker thread's
// niceness (setting rtEdgeWsNice).
import assert from 'node:assert/strict';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { freePort, sleep, threadNiceness, waitFor } from '../helpers/util';
import { connect, type TestClient } from '../helpers/ws-client';

const SCALE = { id: 'sc', type: 'rt-scale', name: 'sim', version: 1, backend: 'simulated', doutPin: '5', sckPin: '6', gain: 'A128', rate: '80', zero: '84000', countsPerGram: '420', motorPin: '18', motorHz: '10000', median: true, average: '4', stableG: '0.05', faultRun: '3', capacityG: '5000' };

function flows(port: number, wb: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'ws worker' },
    SCALE,
    { id: 'in', z: 'f1', type: 'http in', url: '/feed', method: 'post', wires: [['gen']] },
    {
      id: 'gen',
      z: 'f1',
      type: 'function',
      outputs: 2,
      func: `for (let i = 0; i < msg.payload.n; i++) node.send([{ topic: msg.payload.topic, payload: msg.payload.num ? i : { i }, _session: msg.payload.to ? { type: 'websocket', id: msg.payload.to } : undefined }, null]); return [null, { res: msg.res, req: msg.req, payload: 'ok' }];`,
      wires: [['wb'], ['res']],
    },
    { id: 'res', z: 'f1', type: 'http response', wires: [] },
    { id: 'bin', z: 'f1', type: 'http in', url: '/block', method: 'post', wires: [['busy']] },
    { id: 'busy', z: 'f1', type: 'function', outputs: 1, func: `const end = Date.now() + 1000; while (Date.now() < end) {} msg.payload = 'done'; return msg;`, wires: [['res']] },
    { id: 'wb', z: 'f1', type: 'rt-ws-batcher', version: 1, mode: 'worker', port, host: '127.0.0.1', path: '/live', batchSize: 100, delayMs: 16, capKb: 1024, graceS: 10, ringBatches: 256, deflateThreshold: 0, scale: 'sc', scaleTopic: 'weight', dashRate: 4, dashPoints: 50, wires: [['chart']] },
    { id: 'chart', z: 'f1', type: 'function', outputs: 1, func: `const c = global.get('charts') || []; c.push({ at: Date.now(), payload: msg.payload }); global.set('charts', c); return null;`, wires: [[]] },
    { id: 'cin', z: 'f1', type: 'http in', url: '/charts', method: 'get', wires: [['cget']] },
    { id: 'cget', z: 'f1', type: 'function', outputs: 1, func: `msg.payload = global.get('charts') || []; return msg;`, wires: [['res']] },
  ].map((n) => ((n as { id: string }).id === 'wb' ? { ...n, ...wb } : n));
}

describe('rt-ws-batcher node (worker mode, direct source, Dashboard mode)', function () {
  this.timeout(90_000);
  let rt: ChildRuntime;
  let port: number;
  const clients: TestClient[] = [];
  const open = async (q = ''): Promise<TestClient> => {
    const end = Date.now() + 10_000;
    for (;;) {
      try {
        const c = await connect(`ws://127.0.0.1:${port}/live${q}`);
        clients.push(c);
        return c;
      } catch (err) {
        if ((err as { status?: number }).status !== undefined || Date.now() > end) throw err;
        await sleep(100);
      }
    }
  };

  before(async () => {
    port = await freePort();
    rt = await startNodeRed({ flows: flows(port) });
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await rt?.kill();
    rt?.cleanup();
  });

  it('serves its own port from a worker: the client module, flow messages in order', async () => {
    const c = await open();
    await c.waitFor((f) => f.length >= 2, 5000, 'hello + snapshot');
    assert.equal(c.frames[0].m.t, 'hello');
    const r = await fetch(`http://127.0.0.1:${port}/live/client.js`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /export /);
    const feed = await rt.post('/feed', { n: 500, topic: 'flow' });
    assert.equal(feed.status, 200);
    await c.waitFor(() => c.items().filter((i) => i.topic === 'flow').length >= 500, 10_000, '500 flow messages');
    assert.deepEqual(
      c.items()
        .filter((i) => i.topic === 'flow')
        .map((i) => (i.payload as { i: number }).i),
      Array.from({ length: 500 }, (_, i) => i),
    );
  });

  it('msg._session.id reaches that client only through the worker hand-off, in order', async () => {
    const a = await open();
    const b = await open();
    for (const c of [a, b]) await c.waitFor((f) => f.some((x) => x.m.t === 'hello'), 5000, 'hello');
    const idA = String(a.frames.find((f) => f.m.t === 'hello')!.m.id);
    assert.match(idA, /^[0-9a-f]{16}$/);
    assert.equal((await rt.post('/feed', { n: 300, topic: 'reply', to: idA })).status, 200);
    assert.equal((await rt.post('/feed', { n: 10, topic: 'flow2' })).status, 200);
    await a.waitFor((f) => f.filter((x) => x.m.t === 'direct').flatMap((x) => x.m.items ?? []).length >= 300, 10_000, '300 replies at A');
    await b.waitFor(() => b.items().filter((i) => i.topic === 'flow2').length >= 10, 10_000, 'the broadcast at B');
    const got = a.frames.filter((f) => f.m.t === 'direct').flatMap((f) => f.m.items ?? []);
    assert.deepEqual(got.map((x) => (x.payload as { i: number }).i), Array.from({ length: 300 }, (_, i) => i));
    assert.equal(b.frames.filter((f) => f.m.t === 'direct').length, 0, 'B gets none of A\'s replies');
    assert.equal(b.items().filter((i) => i.topic === 'reply').length, 0);
  });

  it('the scale samples keep reaching the browser while the flow engine is blocked for 1 s', async () => {
    const c = await open('?format=bin');
    await c.waitFor(() => c.items().filter((i) => i.topic === 'weight').length >= 20, 10_000, 'live weight samples');
    const t0 = Date.now();
    const r = await rt.post('/block', {});
    const t1 = Date.now();
    assert.equal(r.status, 200);
    assert.ok(t1 - t0 >= 1000, `the flow engine was blocked (${t1 - t0} ms)`);
    const during = c.items().filter((i) => i.topic === 'weight' && i.at > t0 + 150 && i.at < t1 - 150);
    // 80 SPS: about 56 samples in the 0.7 s looked at; the flow engine's thread served none of them
    assert.ok(during.length >= 30, `${during.length} samples arrived while the flow engine was blocked`);
    assert.ok(c.batches().every((b) => b.binary), 'numeric samples in binary frames');
  });

  it('Dashboard mode: point arrays {x, y, topic} at most 4 a second, at most dashPoints each', async () => {
    await sleep(2000);
    const charts = JSON.parse((await rt.get('/charts')).text) as Array<{ at: number; payload: Array<{ x: number; y: number; topic: string }> }>;
    assert.ok(charts.length >= 3, `${charts.length} chart messages`);
    for (const m of charts) {
      assert.ok(Array.isArray(m.payload) && m.payload.length > 0 && m.payload.length <= 50);
      for (const p of m.payload) {
        assert.equal(typeof p.x, 'number');
        assert.equal(typeof p.y, 'number');
        assert.equal(typeof p.topic, 'string');
      }
    }
    const last = charts.slice(-6);
    const span = (last.at(-1)!.at - last[0].at) / 1000;
    assert.ok(last.length - 1 <= 4 * span + 1, `at most 4 a second: ${last.length - 1} in ${span} s`);
    assert.ok(charts.some((m) => m.payload.some((p) => p.topic === 'weight')));
  });

  it('redeploy closes the sockets (1001) and the port; the new worker serves it again', async () => {
    const c = await open();
    await c.waitFor((f) => f.length >= 2);
    await rt.deploy(flows(port, { batchSize: 50 }));
    const how = await Promise.race([c.closed, sleep(5000).then(() => null)]);
    assert.ok(how, 'closed');
    assert.equal(how!.code, 1001);
    const d = await open();
    await d.waitFor((f) => f.length >= 2, 10_000, 'served again');
  });
});

describe('rt-ws-batcher worker thread priority (setting rtEdgeWsNice)', function () {
  this.timeout(60_000);
  let rt: ChildRuntime | null = null;
  const wbOnly = (port: number): object[] => [
    { id: 'f1', type: 'tab', label: 'ws nice' },
    { id: 'wb', z: 'f1', type: 'rt-ws-batcher', version: 1, mode: 'worker', port, host: '127.0.0.1', path: '/live', batchSize: 100, delayMs: 16, capKb: 1024, graceS: 10, ringBatches: 256, deflateThreshold: 0, wires: [[]] },
  ];
  afterEach(async () => {
    await rt?.kill();
    rt?.cleanup();
    rt = null;
  });

  it('by default the worker thread asks for niceness -5 (granted with root or CAP_SYS_NICE, else said in the log)', async function () {
    if (process.platform !== 'linux') this.skip(); // per-thread setpriority is Linux behaviour
    const port = await freePort();
    rt = await startNodeRed({ flows: wbOnly(port) });
    const r = rt;
    const own = threadNiceness(r.proc.pid!)[0]; // 0 as usual; whatever `nice` the runtime was started under
    await waitFor(() => /WebSocket worker thread (runs at|could not raise its priority to) niceness -5/.test(r.log()), 15_000, 'the priority logged');
    if (/runs at niceness -5/.test(r.log())) {
      const all = threadNiceness(r.proc.pid!);
      assert.equal(all.filter((n) => n === -5).length, 1, `one thread at -5: ${all.join(',')}`);
      assert.equal(all[0], own, `the flow engine keeps the process's own niceness (${own}): ${all.join(',')}`);
    } else assert.doesNotMatch(r.log(), /\[warn\].*niceness/, 'the default is not a warning');
  });

  it('rtEdgeWsNice: 0 leaves every thread alone', async function () {
    if (process.platform !== 'linux') this.skip();
    const port = await freePort();
    rt = await startNodeRed({ flows: wbOnly(port), settings: { rtEdgeWsNice: 0 } });
    const r = rt;
    await waitFor(() => /WebSocket at ws:/.test(r.log()), 15_000, 'listening');
    const all = threadNiceness(r.proc.pid!);
    assert.ok(all.every((n) => n === all[0]), `all at the process's own niceness (${all[0]}): ${all.join(',')}`);
    assert.doesNotMatch(r.log(), /niceness/);
  });
});
