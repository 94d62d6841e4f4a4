// The rt-ws-batcher browser client (nodes/rt-ws-batcher/client/rt-ws-client.js,
// as copied into dist/) in Node: it is an ES module with no DOM dependency at
// import time, given the `ws` WebSocket constructor. Decoding of both frame
// formats, backoff, and the connect / resume / gap / visibility / reconnect
// paths against a real `ws` server that speaks the protocol document
// (test/helpers/ws-proto-server.ts), plus the canvas renderer's frame and ring
// logic with a recording 2D context (the real canvas runs in
// ws-batcher-chromium.test.ts).
import assert from 'node:assert/strict';
import { join } from 'node:path';

import WebSocket from 'ws';

import { sleep, waitFor } from '../helpers/util';
import { encodeBinary, ProtoServer } from '../helpers/ws-proto-server';

/* eslint-disable @typescript-eslint/no-explicit-any */
const clientDir = join(__dirname, '..', '..', 'nodes', 'rt-ws-batcher', 'client');
// A real dynamic import (module node16 keeps it) of the shipped ES modules.
const loadClient = (): Promise<any> => import(join(clientDir, 'rt-ws-client.js'));
const loadCanvas = (): Promise<any> => import(join(clientDir, 'rt-ws-canvas.js'));

describe('rt-ws-batcher browser client (Node, real ws server)', function () {
  this.timeout(20_000);
  let C: any;
  let K: any;
  before(async () => {
    C = await loadClient();
    K = await loadCanvas();
  });

  describe('decoding', () => {
    it('decodes the packed binary frame: header, topic table, aligned columns, flags', () => {
      const items = [
        { topic: 'scale/weight', payload: 12.345, ts: 1764270000110.25 },
        { topic: 'é/t', payload: -1.5, ts: 1764270000111 },
        { topic: 'scale/weight', payload: 12.351, ts: 1764270000122.75 },
      ];
      const buf = encodeBinary(1042, 1764270000123.5, items, 1);
      // an ArrayBuffer exactly as a browser WebSocket delivers it
      const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
      const b = C.decodeBinaryFrame(ab, 1041);
      assert.equal(b.type, 'batch');
      assert.equal(b.format, 'bin');
      assert.equal(b.seq, 1042);
      assert.equal(b.ts, 1764270000123.5);
      assert.equal(b.coalesced, 1);
      assert.deepEqual(b.topics, ['scale/weight', 'é/t']);
      assert.deepEqual([...b.topicIndex], [0, 1, 0]);
      assert.deepEqual([...b.times], [1764270000110.25, 1764270000111, 1764270000122.75]);
      assert.deepEqual([...b.values], [12.345, -1.5, 12.351]);
      assert.equal(b.values.buffer, ab, 'columns are views over the frame, not copies');
      const pts: [string, number, number][] = [];
      C.forEachPoint(b, (t: string, ts: number, v: number) => pts.push([t, ts, v]));
      assert.deepEqual(pts[1], ['é/t', 1764270000111, -1.5]);

      // a snapshot flag, and a Buffer at an odd offset (copied, still right)
      const snap = encodeBinary(7, 1, [{ topic: 'a', payload: 3, ts: 2 }], 2);
      const odd = Buffer.alloc(snap.length + 1);
      snap.copy(odd, 1);
      const s = C.decodeBinaryFrame(odd.subarray(1), null);
      assert.equal(s.type, 'snapshot');
      assert.equal(s.coalesced, 0);
      assert.deepEqual([...s.values], [3]);
    });

    it('widens the 32-bit binary seq from the last full seq', () => {
      assert.equal(C.widenSeq(5, null), 5);
      assert.equal(C.widenSeq(3, 2 ** 32 + 1), 2 ** 32 + 3);
      assert.equal(C.widenSeq(2, 2 ** 32 - 2), 2 ** 32 + 2, 'wraps forward');
      assert.equal(C.widenSeq(2 ** 32 - 1, 2 ** 32 + 1), 2 ** 32 - 1, 'one behind across the wrap');
      const b = C.decodeBinaryFrame(encodeBinary(2 ** 32 + 9, 0, [{ topic: 'x', payload: 1, ts: 0 }]), 2 ** 32 + 8);
      assert.equal(b.seq, 2 ** 32 + 9);
    });

    it('refuses broken binary frames with a clear error', () => {
      const good = encodeBinary(1, 0, [{ topic: 'x', payload: 1, ts: 0 }]);
      assert.throws(() => C.decodeBinaryFrame(good.subarray(0, 10)), /shorter than the 24-byte header/);
      assert.throws(() => C.decodeBinaryFrame(good.subarray(0, good.length - 4)), /need \d+ bytes/);
      const bad = Buffer.from(good);
      bad[0] = 0;
      assert.throws(() => C.decodeBinaryFrame(bad), /bad magic/);
      const v2 = Buffer.from(good);
      v2[2] = 2;
      assert.throws(() => C.decodeBinaryFrame(v2), /version 2/);
      const badIdx = Buffer.from(good);
      badIdx.writeUInt16LE(5, 32); // topic table: 24 + 2 + 'x' + pad = 28 -> index column at 32
      assert.throws(() => C.decodeBinaryFrame(badIdx), /topic index 5/);
    });

    it('decodes JSON batches, snapshots and control messages', () => {
      const d = C.decodeTextFrame('{"v":1,"t":"batch","seq":3,"ts":5.5,"coalesced":4,"items":[{"topic":"a","payload":{"x":1},"ts":5}]}');
      assert.equal(d.kind, 'data');
      assert.equal(d.batch.seq, 3);
      assert.equal(d.batch.coalesced, 4);
      assert.equal(d.batch.pointCount, 1);
      assert.deepEqual(d.batch.items[0].payload, { x: 1 });
      assert.equal(C.decodeTextFrame('{"v":1,"t":"snapshot","seq":9,"items":[]}').batch.type, 'snapshot');
      const g = C.decodeTextFrame('{"v":1,"t":"gap","from":2,"to":8}');
      assert.deepEqual(g, { kind: 'control', control: { v: 1, t: 'gap', from: 2, to: 8 } });
      assert.throws(() => C.decodeTextFrame('{"v":2,"t":"batch","seq":1,"items":[]}'), /version 2/);
      assert.throws(() => C.decodeTextFrame('{"v":1,"t":"batch","items":[]}'), /without seq/);
      assert.throws(() => C.decodeTextFrame('[1]'), /not a protocol message/);
    });

    it('backoff is full jitter under an exponential ceiling, capped', () => {
      const o = { baseMs: 100, capMs: 3000 };
      assert.equal(C.backoffDelay(0, o, () => 0), 0);
      const top = [0, 1, 2, 3, 4, 5, 6, 40].map((a) => C.backoffDelay(a, o, () => 0.999999));
      assert.deepEqual(top, [99, 199, 399, 799, 1599, 2999, 2999, 2999]);
      // uniform in [0, ceiling): the mean of many draws is about half the ceiling
      let sum = 0;
      for (let i = 0; i < 4000; i++) sum += C.backoffDelay(3, o);
      assert.ok(Math.abs(sum / 4000 - 400) < 40, `mean ${sum / 4000}`);
      assert.equal(C.socketUrl('/live', { protocol: 'https:', host: 'h:1880' }), 'wss://h:1880/live');
      assert.equal(C.socketUrl('live', { protocol: 'http:', host: 'h' }), 'ws://h/live');
      assert.equal(C.socketUrl('ws://a:1/x'), 'ws://a:1/x');
    });
  });

  describe('against a protocol server', () => {
    let srv: ProtoServer;
    let url: string;
    const clients: any[] = [];
    const mk = (o: Record<string, unknown>): any => {
      const c = new C.RtWsClient({ url, WebSocket, pingMs: 0, backoffBaseMs: 20, backoffCapMs: 200, ...o });
      clients.push(c);
      return c;
    };
    beforeEach(async () => {
      srv = new ProtoServer({ ring: 16 });
      url = await srv.listen();
    });
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await srv.close();
    });

    it('json: hello, snapshot, then every batch in order with its items', async () => {
      srv.publish([{ topic: 'w', payload: 1 }]);
      const c = mk({ format: 'json' });
      const got: any[] = [];
      const snaps: any[] = [];
      c.on('batch', (b: any) => got.push(b));
      c.on('snapshot', (b: any) => snaps.push(b));
      c.connect();
      await waitFor(() => snaps.length === 1, 3000, 'snapshot');
      assert.deepEqual(snaps[0].items.map((i: any) => i.payload), [1]);
      for (let i = 0; i < 50; i++) srv.publish([{ topic: 'w', payload: i }, { topic: 'text', payload: { s: `x${i}` } }]);
      await waitFor(() => got.length === 50, 3000, '50 batches');
      assert.deepEqual(
        got.map((b) => b.seq),
        Array.from({ length: 50 }, (_, i) => i + 2),
      );
      assert.deepEqual(got[49].items[1].payload, { s: 'x49' });
      assert.equal(c.stats.batches, 50);
      assert.equal(c.stats.points, 100);
      assert.equal(c.stats.unexpectedGaps, 0);
      assert.equal(srv.history[0].format, 'json');
      assert.equal(srv.history[0].resume, null);
    });

    it('bin: numeric batches arrive as binary columns, others as JSON text frames in the same seq', async () => {
      const c = mk({ format: 'bin' });
      const got: any[] = [];
      c.on('batch', (b: any) => got.push(b));
      c.connect();
      await waitFor(() => c.stats.snapshots === 1, 3000, 'snapshot');
      srv.publish([{ topic: 'a', payload: 1.25 }, { topic: 'b', payload: 2 }]);
      srv.publish([{ topic: 'a', payload: 'not a number' }]);
      srv.publish([{ topic: 'a', payload: 3.5 }]);
      await waitFor(() => got.length === 3, 3000, '3 batches');
      assert.deepEqual(
        got.map((b) => [b.seq, b.format]),
        [
          [1, 'bin'],
          [2, 'json'],
          [3, 'bin'],
        ],
      );
      assert.deepEqual([...got[0].values], [1.25, 2]);
      assert.deepEqual(got[0].topics, ['a', 'b']);
      assert.equal(srv.history[0].format, 'bin');
      assert.equal(c.stats.unexpectedGaps, 0);
    });

    it('reconnects after a cut and resumes from its last seq: missed batches replayed, no gap', async () => {
      const c = mk({ format: 'bin' });
      const seqs: number[] = [];
      c.on('batch', (b: any) => seqs.push(b.seq));
      c.connect();
      await waitFor(() => c.stats.connects === 1, 3000, 'connected');
      for (let i = 0; i < 5; i++) srv.publish([{ topic: 'w', payload: i }]);
      await waitFor(() => seqs.length === 5, 3000, '5 batches');
      srv.dropAll();
      srv.publishOffline(6); // seq 6..11, inside the 16-batch ring
      await waitFor(() => c.stats.reconnects === 1 && seqs.length === 11, 5000, 'reconnect + replay');
      srv.publish([{ topic: 'w', payload: 99 }]);
      await waitFor(() => seqs.length === 12, 3000, 'live after replay');
      assert.deepEqual(
        seqs,
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
      assert.equal(srv.history[1].resume, 5, 'resumed with its last seq');
      assert.equal(c.stats.gaps, 0);
      assert.equal(c.stats.snapshots, 1, 'the first connect only');
      assert.equal(c.stats.unexpectedGaps, 0);
    });

    it('outside the ring: a gap marker, then a snapshot, then live batches (no unexpected gap)', async () => {
      const c = mk({ format: 'json' });
      const gaps: any[] = [];
      const seqs: number[] = [];
      c.on('gap', (g: any) => gaps.push(g));
      c.on('batch', (b: any) => seqs.push(b.seq));
      c.connect();
      await waitFor(() => c.stats.connects === 1, 3000, 'connected');
      srv.publish([{ topic: 'w', payload: 0 }]);
      await waitFor(() => seqs.length === 1, 3000, 'first batch');
      srv.dropAll();
      srv.publishOffline(40, 'w'); // seq 2..41, ring keeps 26..41
      await waitFor(() => c.stats.snapshots === 2, 5000, 'snapshot after reconnect');
      assert.deepEqual(gaps, [{ from: 2, to: 25 }]);
      assert.equal(c.stats.gapBatches, 24);
      assert.equal(c.lastSeq, 41, 'the snapshot stands for the current seq');
      srv.publish([{ topic: 'w', payload: 1 }]);
      await waitFor(() => seqs.length === 2, 3000, 'live batch');
      assert.deepEqual(seqs, [1, 42]);
      assert.equal(c.stats.unexpectedGaps, 0);
    });

    it('a seq jump without a gap marker is counted as lost', () => {
      const c = mk({});
      c.handleFrame('{"v":1,"t":"batch","seq":1,"ts":0,"items":[]}');
      c.handleFrame('{"v":1,"t":"batch","seq":4,"ts":0,"items":[]}');
      c.handleFrame('{"v":1,"t":"batch","seq":4,"ts":0,"items":[]}');
      assert.equal(c.stats.unexpectedGaps, 1);
      assert.equal(c.stats.duplicates, 1);
      assert.equal(c.stats.batches, 2);
      c.handleFrame('{"v":1,"t":"hello","seq":0}'); // a new server stream (restart)
      assert.equal(c.stats.serverRestarts, 1);
      assert.equal(c.lastSeq, null);
      c.handleFrame('{"v":1,"t":"batch","seq":1,"ts":0,"items":[]}');
      assert.equal(c.stats.batches, 3, 'seq 1 of the new stream is not a duplicate');
      c.handleFrame('{"v":1,"t":"snapshot","seq":7,"items":[]}');
      c.handleFrame('{"v":1,"t":"batch","seq":7,"ts":0,"items":[]}');
      assert.equal(c.stats.batches, 4, 'the first batch after a snapshot may carry its seq');
      c.handleFrame('{"v":1,"t":"batch","seq":7,"ts":0,"items":[]}');
      assert.equal(c.stats.duplicates, 2, 'not twice');
      c.handleFrame('not json');
      assert.equal(c.stats.decodeErrors, 1);
    });

    it('backs off between refused attempts (exponential ceiling, capped), then resets after a connect', async () => {
      srv.refuseNext = 5;
      const c = mk({ backoffBaseMs: 40, backoffCapMs: 400, random: () => 0.999 });
      const delays: number[] = [];
      c.on('reconnecting', (r: any) => delays.push(r.delay));
      c.connect();
      await waitFor(() => c.stats.connects === 1, 8000, 'connected after 5 refusals');
      assert.deepEqual(delays, [39, 79, 159, 319, 399]);
      const at = srv.history.map((h) => h.at);
      for (let i = 1; i < at.length; i++) assert.ok(at[i] - at[i - 1] >= delays[i - 1] - 5, `attempt ${i} waited ${at[i] - at[i - 1]} ms, backoff ${delays[i - 1]}`);
      srv.dropAll();
      await waitFor(() => c.stats.connects === 2, 3000, 'reconnected');
      assert.equal(delays[5], 39, 'a connection that reached hello resets the backoff');
    });

    it('reports visibility: hidden at connect gets nothing; visible again gets a snapshot', async () => {
      const doc: any = new EventTarget();
      doc.hidden = true;
      const c = mk({ document: doc });
      const got: any[] = [];
      c.on('batch', (b: any) => got.push(b));
      c.connect();
      await waitFor(() => c.stats.connects === 1, 3000, 'connected');
      assert.equal(srv.history[0].hidden, true, 'hidden=1 in the URL');
      srv.publish([{ topic: 'w', payload: 1 }]);
      await sleep(150);
      assert.equal(got.length, 0);
      assert.equal(c.stats.snapshots, 0);
      doc.hidden = false;
      doc.dispatchEvent(new Event('visibilitychange'));
      await waitFor(() => c.stats.snapshots === 1, 3000, 'snapshot on visible');
      const conn = [...srv.conns][0];
      assert.deepEqual(conn.received, [{ t: 'visibility', hidden: false }]);
      doc.hidden = true;
      doc.dispatchEvent(new Event('visibilitychange'));
      await waitFor(() => conn.received.length === 2, 3000, 'hidden reported');
      assert.deepEqual(conn.received[1], { t: 'visibility', hidden: true });
      c.close();
      doc.dispatchEvent(new Event('visibilitychange'));
      await sleep(50);
      assert.equal(conn.received.length, 2, 'close() removed the listener');
    });

    it('drops a socket that answers no ping and reconnects; close() stops for good', async () => {
      srv.answerPings = false;
      const c = mk({ pingMs: 60 });
      const closes: any[] = [];
      c.on('close', (e: any) => closes.push(e));
      c.connect();
      await waitFor(() => closes.length >= 1, 3000, 'dead socket dropped');
      assert.equal(closes[0].code, 4000);
      await waitFor(() => c.stats.connects >= 2, 3000, 'reconnected');
      c.close();
      const n = srv.history.length;
      await sleep(400);
      assert.equal(srv.history.length, n, 'no reconnect after close()');
      assert.equal(c.reconnectTimer, null);
      assert.equal(c.pingTimer, null);
    });
  });

  describe('canvas renderer (recording 2D context)', () => {
    function fakeCanvas(): any {
      const calls = { lineTo: 0, moveTo: 0, stroke: 0 };
      const ctx: any = new Proxy(
        {},
        {
          get: (_t, k: string) => (k in calls ? () => (calls as any)[k]++ : () => undefined),
          set: () => true,
        },
      );
      return { calls, width: 600, height: 200, clientWidth: 600, clientHeight: 200, getContext: () => ctx };
    }

    it('draws at most once per animation frame whatever arrived, keeps a fixed ring per topic', () => {
      const cv = fakeCanvas();
      const frames: (() => void)[] = [];
      const r = new K.SeriesCanvas(cv, { capacity: 1500, windowMs: 20_000, requestAnimationFrame: (cb: any) => frames.push(cb), devicePixelRatio: 1 });
      // 30 s at 80 SPS in 240 binary batches of 10 points, before one frame runs
      let t = 1e12;
      for (let k = 0; k < 240; k++) {
        const items = Array.from({ length: 10 }, (_, i) => ({ topic: 'w', payload: Math.sin(k + i), ts: (t += 12.5) }));
        const buf = encodeBinary(k + 1, t, items);
        r.pushBatch(C.decodeBinaryFrame(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)));
      }
      assert.equal(frames.length, 1, 'one animation frame requested for 240 batches');
      assert.equal(r.stats.draws, 0);
      frames.shift()!();
      assert.equal(r.stats.draws, 1);
      const ring = r.series.get('w');
      assert.equal(ring.size, 1500, 'ring bounded at its capacity');
      assert.equal(ring.t.length, 1500, 'no growth');
      assert.equal(r.stats.visiblePoints, 1500, '1500 newest points within the 20 s window (18.75 s)');
      assert.equal(cv.calls.lineTo, 5 + 1499, 'five grid lines and one polyline through 1500 points');
      // nothing new: no frame requested, nothing drawn
      assert.equal(frames.length, 0);
      r.pushBatch({ items: [{ topic: 'w', payload: 'x', ts: t }] }); // not numeric: ignored
      r.pushBatch({ items: [{ topic: 'w', payload: 5, ts: (t += 12.5) }] });
      r.breakLines();
      assert.equal(frames.length, 1);
      frames.shift()!();
      assert.equal(r.stats.draws, 2);
      assert.equal(r.stats.points, 2401);
      assert.ok(Number.isNaN(ring.v[ring.at(ring.size - 1)]), 'a gap breaks the line');
      // topics beyond maxTopics are counted, not stored
      const r2 = new K.SeriesCanvas(fakeCanvas(), { maxTopics: 2, requestAnimationFrame: () => 1 });
      for (const topic of ['a', 'b', 'c', 'd']) r2.push(topic, 1, 1);
      assert.equal(r2.series.size, 2);
      assert.equal(r2.stats.ignoredPoints, 2);
      r.destroy();
    });
  });
});
