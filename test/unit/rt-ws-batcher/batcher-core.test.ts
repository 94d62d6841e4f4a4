// The batcher's pure logic with fake sockets and a fake clock: flush on size or
// delay, one serialisation per batch, ring and resume, snapshot, visibility,
// the byte cap (coalescing, eviction), shutdown; the wire formats; the
// Dashboard feed; config limits.
import assert from 'node:assert/strict';

import { SharedMetrics } from '../../../nodes/shared/shared-metrics';
import { BATCH_METRICS, type Conn, DEFAULT_HUB, Hub, type HubOptions, WS_METRICS } from '../../../nodes/rt-ws-batcher/batcher-core';
import { DashFeed } from '../../../nodes/rt-ws-batcher/dash-core';
import { readWsConfig } from '../../../nodes/rt-ws-batcher/ws-config';
import { clientQuery, originAllowed, parseOrigins } from '../../../nodes/rt-ws-batcher/ws-serve';
import { binBatch, decodeBin, type Item, serialisePayload } from '../../../nodes/rt-ws-batcher/wire';

class FakeConn implements Conn {
  sent: Array<string | Buffer> = [];
  queued = 0;
  closedWith: [number, string] | null = null;
  buffered(): number {
    return this.queued;
  }
  send(d: string | Buffer): void {
    this.sent.push(d);
  }
  close(code: number, reason: string): void {
    this.closedWith = [code, reason];
  }
  wireBytes(): number {
    return -1;
  }
  json(): Array<Record<string, unknown>> {
    return this.sent.filter((x): x is string => typeof x === 'string').map((x) => JSON.parse(x) as Record<string, unknown>);
  }
}

function setup(o: Partial<HubOptions> = {}) {
  let now = 1000;
  const timers: Array<{ at: number; fn: () => void; id: number }> = [];
  let nextId = 1;
  const metrics = SharedMetrics.create(WS_METRICS);
  const batch = SharedMetrics.create(BATCH_METRICS);
  const hub = new Hub(
    { ...DEFAULT_HUB, ...o },
    {
      nowMs: () => now,
      nowUs: () => now * 1000,
      setTimer: (fn, ms) => {
        const t = { at: now + ms, fn, id: nextId++ };
        timers.push(t);
        return t.id;
      },
      clearTimer: (h) => {
        const i = timers.findIndex((t) => t.id === h);
        if (i >= 0) timers.splice(i, 1);
      },
      metrics,
      batchSize: batch.histogram('size'),
    },
  );
  const advance = (ms: number): void => {
    const end = now + ms;
    for (;;) {
      timers.sort((a, b) => a.at - b.at);
      const t = timers[0];
      if (!t || t.at > end) break;
      timers.shift();
      now = t.at;
      t.fn();
    }
    now = end;
  };
  let i = 0;
  const item = (topic = 't', payload: unknown = i): Item => {
    const s = serialisePayload(payload);
    i++;
    return { topic, json: s.json, num: s.num, ts: now, enqUs: now * 1000 };
  };
  return { hub, advance, item, metrics, batch, timers, now: () => now };
}

describe('rt-ws-batcher core', () => {
  it('a message addressed to one client id goes to that client only, in a direct frame outside the sequence, ring and snapshot', () => {
    const { hub, advance, item, metrics } = setup({ batchSize: 100, delayMs: 16 });
    const a = new FakeConn();
    const b = new FakeConn();
    hub.addClient(a, { format: 'json', id: 'aaaa' });
    hub.addClient(b, { format: 'bin', id: 'bbbb' });
    assert.equal(a.json()[0].id, 'aaaa', 'the hello frame carries the id');
    hub.enqueue(item('all', 1));
    hub.enqueueTo('aaaa', item('reply', 'for a'));
    hub.enqueueTo('aaaa', item('reply', 'again a'));
    hub.enqueueTo('zzzz', item('reply', 'nobody'));
    advance(15);
    assert.equal(a.json().length, 2, 'replies wait for the flush like batches');
    advance(1);
    const da = a.json().filter((m) => m.t === 'direct');
    assert.equal(da.length, 1);
    assert.deepEqual((da[0].items as Array<{ payload: unknown }>).map((x) => x.payload), ['for a', 'again a']);
    assert.equal(da[0].seq, undefined, 'no sequence');
    assert.equal(b.json().filter((m) => m.t === 'direct').length, 0, 'the other client gets no reply');
    const batches = a.json().filter((m) => m.t === 'batch');
    assert.equal(batches.length, 1);
    assert.deepEqual((batches[0].items as Array<{ topic: string }>).map((x) => x.topic), ['all'], 'replies are not in the broadcast batch');
    assert.equal(hub.currentSeq, 1);
    assert.equal(metrics.counter('direct'), 2);
    assert.equal(metrics.counter('skipped_no_client'), 1);
    // Not in the snapshot a new client gets, not replayed on resume.
    const c = new FakeConn();
    hub.addClient(c, { format: 'json', id: 'cccc' });
    const snap = c.json().find((m) => m.t === 'snapshot')!;
    assert.deepEqual((snap.items as Array<{ topic: string }>).map((x) => x.topic), ['all']);
    // A closed client's id no longer receives.
    hub.removeClient([...hub.clients].find((x) => x.id === 'aaaa')!);
    hub.enqueueTo('aaaa', item('reply', 'late'));
    advance(20);
    assert.equal(metrics.counter('skipped_no_client'), 2);
    // A client over its cap does not get replies (counted as slow-client).
    b.queued = 10 * 1024 * 1024;
    const before = metrics.counter('skipped_slow');
    hub.enqueueTo('bbbb', item('reply', 'to slow b'));
    advance(20);
    assert.equal(b.json().filter((m) => m.t === 'direct').length, 0);
    assert.equal(metrics.counter('skipped_slow'), before + 1);
  });

  it('flushes on the batch size or after the delay, whichever first; the sequence grows by one per batch', () => {
    const { hub, advance, item, batch } = setup({ batchSize: 3, delayMs: 16 });
    const c = new FakeConn();
    hub.addClient(c, { format: 'json' });
    assert.deepEqual(c.json().map((m) => m.t), ['hello', 'snapshot']);
    hub.enqueue(item('a', 1));
    hub.enqueue(item('a', 2));
    advance(15);
    assert.equal(c.sent.length, 2, 'nothing before the delay');
    advance(1);
    const b1 = c.json()[2];
    assert.equal(b1.seq, 1);
    assert.deepEqual((b1.items as Array<{ payload: number }>).map((x) => x.payload), [1, 2]);
    for (let k = 0; k < 3; k++) hub.enqueue(item('a', 10 + k));
    const b2 = c.json()[3];
    assert.equal(b2.seq, 2, 'flushed at once on size');
    assert.equal((b2.items as unknown[]).length, 3);
    assert.equal(batch.histogram('size').snapshot().count, 2);
  });

  it('serialises a batch once for every JSON client (the very same string)', () => {
    const { hub, item } = setup({ batchSize: 2 });
    const a = new FakeConn();
    const b = new FakeConn();
    hub.addClient(a, { format: 'json' });
    hub.addClient(b, { format: 'json' });
    hub.enqueue(item());
    hub.enqueue(item());
    assert.ok(Object.is(a.sent[2], b.sent[2]));
  });

  it('bin clients get a binary frame for numeric batches, JSON for the others, same seq', () => {
    const { hub, item } = setup({ batchSize: 2 });
    const c = new FakeConn();
    hub.addClient(c, { format: 'bin' });
    hub.enqueue(item('w', 1.5));
    hub.enqueue(item('v', 2.5));
    const f = c.sent[2] as Buffer;
    assert.ok(Buffer.isBuffer(f));
    const d = decodeBin(f);
    assert.equal(d.seq, 1);
    assert.deepEqual(d.points.map((p) => [p.topic, p.value]), [['w', 1.5], ['v', 2.5]]);
    hub.enqueue(item('w', 3));
    hub.enqueue(item('o', { x: 1 }));
    assert.equal(JSON.parse(c.sent[3] as string).seq, 2);
  });

  it('resume inside the ring replays; outside sends a gap and a snapshot', () => {
    const { hub, item, metrics } = setup({ batchSize: 1, ringBatches: 4 });
    for (let k = 0; k < 10; k++) hub.enqueue(item('t' + (k % 2), k));
    const r = new FakeConn();
    hub.addClient(r, { format: 'json', resume: 7 });
    assert.deepEqual(r.json().map((m) => [m.t, m.seq]), [['hello', 10], ['batch', 8], ['batch', 9], ['batch', 10]]);
    const g = new FakeConn();
    hub.addClient(g, { format: 'json', resume: 2 });
    const m = g.json();
    assert.deepEqual(m.map((x) => x.t), ['hello', 'gap', 'snapshot']);
    assert.deepEqual([m[1].from, m[1].to], [3, 6]);
    assert.deepEqual((m[2].items as Array<{ topic: string; payload: number }>).map((x) => [x.topic, x.payload]), [['t0', 8], ['t1', 9]]);
    assert.equal(metrics.counter('resumes_replay'), 1);
    assert.equal(metrics.counter('resumes_snapshot'), 1);
  });

  it('a hidden client gets nothing, then a snapshot when visible', () => {
    const { hub, item, metrics } = setup({ batchSize: 1 });
    const c = new FakeConn();
    const cl = hub.addClient(c, { format: 'json', hidden: true });
    hub.enqueue(item('a', 1));
    hub.enqueue(item('a', 2));
    assert.deepEqual(c.json().map((m) => m.t), ['hello']);
    hub.onMessage(cl, JSON.stringify({ t: 'visibility', hidden: false }));
    const s = c.json()[1];
    assert.equal(s.t, 'snapshot');
    assert.deepEqual(s.items, [{ topic: 'a', payload: 2, ts: 1000 }]);
    assert.equal(metrics.counter('skipped_hidden'), 2);
  });

  it('over its cap a client is skipped (counted), then gets one coalesced batch; still over after the grace time it is closed 4001', () => {
    const { hub, item, advance, metrics } = setup({ batchSize: 1, capBytes: 100, graceMs: 1000 });
    const slow = new FakeConn();
    const fast = new FakeConn();
    hub.addClient(slow, { format: 'json' });
    hub.addClient(fast, { format: 'json' });
    slow.queued = 500;
    for (let k = 0; k < 6; k++) hub.enqueue(item('t' + (k % 2), k));
    assert.equal(fast.json().filter((m) => m.t === 'batch').length, 6, 'the fast client gets everything');
    assert.equal(slow.json().filter((m) => m.t === 'batch').length, 0);
    assert.equal(metrics.counter('skipped_slow'), 6);
    slow.queued = 0;
    advance(300); // the housekeeper sees it under the cap
    const co = slow.json().filter((m) => m.t === 'batch');
    assert.equal(co.length, 1);
    assert.equal(co[0].coalesced, 4);
    assert.deepEqual((co[0].items as Array<{ topic: string; payload: number }>).map((x) => [x.topic, x.payload]).sort(), [['t0', 4], ['t1', 5]]);
    slow.queued = 500;
    hub.enqueue(item('t0', 9));
    advance(1100);
    assert.deepEqual(slow.closedWith, [4001, 'slow-client']);
    assert.equal(slow.json().at(-1)!.t, 'close');
    assert.equal(metrics.counter('evictions'), 1);
    assert.equal(hub.clients.size, 1);
  });

  it('close flushes what is pending, closes every socket with 1001 and leaves no timer', () => {
    const { hub, item, timers } = setup({ batchSize: 100 });
    const a = new FakeConn();
    hub.addClient(a, { format: 'json' });
    hub.enqueue(item('a', 1));
    hub.close();
    assert.deepEqual(a.json().map((m) => m.t), ['hello', 'snapshot', 'batch', 'close']);
    assert.deepEqual(a.closedWith, [1001, 'shutdown']);
    assert.equal(timers.length, 0);
  });

  it('wire: the binary layout (header, padded topic table, 8-byte aligned columns)', () => {
    const items: Item[] = [
      { topic: 'abc', json: '1', num: 1, ts: 10, enqUs: 0 },
      { topic: 'de', json: '2', num: 2, ts: 11, enqUs: 0 },
      { topic: 'abc', json: '3', num: 3, ts: 12, enqUs: 0 },
    ];
    const b = binBatch(0x1_0000_0005, 99.5, items, 1);
    assert.equal(b.toString('latin1', 0, 2), 'RW');
    assert.equal(b[2], 1);
    assert.equal(b[3], 1);
    assert.equal(b.readUInt32LE(4), 5, 'seq low 32 bits');
    assert.equal(b.readDoubleLE(8), 99.5);
    assert.equal(b.readUInt16LE(16), 2);
    assert.equal(b.readUInt32LE(20), 3);
    // topic table: 24 + (2+4) + (2+2) = 34; indexes at 40, ts at 48, values at 72
    assert.equal(b.readUInt16LE(24), 3);
    assert.equal(b.toString('utf8', 26, 29), 'abc');
    assert.equal(b.readUInt16LE(30), 2);
    assert.deepEqual([b.readUInt16LE(40), b.readUInt16LE(42), b.readUInt16LE(44)], [0, 1, 0]);
    assert.equal(b.readDoubleLE(48), 10);
    assert.equal(b.readDoubleLE(72 + 16), 3);
    assert.equal(b.length, 72 + 24);
  });

  it('wire: unserialisable payloads throw (circular, BigInt); numbers keep their value', () => {
    const o: Record<string, unknown> = {};
    o.self = o;
    assert.throws(() => serialisePayload(o), /circular/i);
    assert.throws(() => serialisePayload({ b: 1n }), /BigInt/i);
    assert.deepEqual(serialisePayload(2.5), { json: '2.5', num: 2.5 });
    assert.equal(serialisePayload(undefined).json, 'null');
    assert.ok(Number.isNaN(serialisePayload(Infinity).num));
  });

  it('dashboard feed: numeric points only, at most maxPoints per take, thinned evenly', () => {
    const f = new DashFeed(10);
    const items: Item[] = Array.from({ length: 100 }, (_, k) => ({ topic: 'w', json: String(k), num: k, ts: k, enqUs: 0 }));
    f.add([{ topic: 'x', json: '"s"', num: NaN, ts: 0, enqUs: 0 }, ...items]);
    const pts = f.take()!;
    assert.equal(pts.length, 10);
    assert.deepEqual(pts[0], { x: 0, y: 0, topic: 'w' });
    assert.equal(pts[9].y, 99);
    assert.equal(f.take(), null);
  });

  it('config, origins and the client query', () => {
    const c = readWsConfig({ path: 'ws/x/', batchSize: '0', delayMs: 16 });
    assert.equal(c.path, '/ws/x');
    assert.deepEqual(c.problems.map((p) => p.code), ['out-of-range-whole']);
    assert.deepEqual(readWsConfig({ path: '/a b' }).problems.map((p) => p.code), ['bad-path']);
    assert.deepEqual(parseOrigins('https://a.example/, http://b:8080 *'), ['https://a.example', 'http://b:8080']);
    assert.ok(originAllowed('https://a.example', ['https://a.example']));
    assert.ok(!originAllowed(undefined, ['https://a.example']));
    assert.ok(originAllowed(undefined, []));
    assert.deepEqual(clientQuery('/p?format=bin&resume=42&hidden=1'), { format: 'bin', resume: 42, hidden: true });
    assert.deepEqual(clientQuery('/p?resume=-1'), { format: 'json', resume: undefined, hidden: false });
  });
});
