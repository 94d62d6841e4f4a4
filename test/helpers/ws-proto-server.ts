// A small but real rt-ws-batcher protocol server (docs/ws-batcher-protocol.md,
// v1) on a `ws` WebSocketServer, for the browser client's tests: it speaks
// hello / batch / snapshot / gap / visibility / ping, encodes the packed binary
// frame from the document (not from the node's code, so the client is checked
// against the contract), keeps a bounded ring for resume, and lets a test drop
// every socket to exercise reconnects deterministically.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { type WebSocket, WebSocketServer } from 'ws';

export interface ProtoItem {
  topic: string;
  payload: unknown;
  ts: number;
}

export interface ProtoBatch {
  seq: number;
  ts: number;
  items: ProtoItem[];
}

export interface ProtoConn {
  ws: WebSocket;
  format: 'json' | 'bin';
  resume: number | null;
  hidden: boolean;
  query: URLSearchParams;
  /** text frames the client sent, parsed */
  received: Record<string, unknown>[];
}

/** Encodes one batch as the protocol's packed binary frame (numeric payloads only). */
export function encodeBinary(seq: number, ts: number, items: ProtoItem[], flags = 0): Buffer {
  const topics: string[] = [];
  const index = new Map<string, number>();
  const idx: number[] = [];
  for (const it of items) {
    let k = index.get(it.topic);
    if (k === undefined) {
      k = topics.length;
      topics.push(it.topic);
      index.set(it.topic, k);
    }
    idx.push(k);
  }
  const names = topics.map((t) => Buffer.from(t, 'utf8'));
  let p = 24;
  for (const b of names) p += 2 + b.length + (b.length & 1);
  const a8 = (x: number): number => (x + 7) & ~7;
  const n = items.length;
  const idxOff = a8(p);
  const tsOff = a8(idxOff + 2 * n);
  const valOff = tsOff + 8 * n;
  const buf = Buffer.alloc(valOff + 8 * n);
  buf[0] = 0x52;
  buf[1] = 0x57;
  buf[2] = 1;
  buf[3] = flags;
  buf.writeUInt32LE(seq % 4294967296, 4);
  buf.writeDoubleLE(ts, 8);
  buf.writeUInt16LE(topics.length, 16);
  buf.writeUInt16LE(0, 18);
  buf.writeUInt32LE(n, 20);
  let q = 24;
  for (const b of names) {
    buf.writeUInt16LE(b.length, q);
    b.copy(buf, q + 2);
    q += 2 + b.length + (b.length & 1);
  }
  for (let i = 0; i < n; i++) {
    buf.writeUInt16LE(idx[i], idxOff + 2 * i);
    buf.writeDoubleLE(items[i].ts, tsOff + 8 * i);
    buf.writeDoubleLE(items[i].payload as number, valOff + 8 * i);
  }
  return buf;
}

export interface ProtoServerOptions {
  path?: string;
  /** batches kept for resume (default 64) */
  ring?: number;
  /** first seq (default 0: the first batch is 1) */
  startSeq?: number;
  /** HTTP GET routes: URL path -> file to serve (modules as text/javascript, .html as text/html) */
  files?: Record<string, string>;
  /** HTTP GET routes: URL path -> HTML text */
  pages?: Record<string, string>;
}

export class ProtoServer {
  readonly http: Server;
  readonly wss: WebSocketServer;
  readonly path: string;
  readonly ringSize: number;
  seq: number;
  ring: ProtoBatch[] = [];
  latest = new Map<string, ProtoItem>();
  conns = new Set<ProtoConn>();
  /** every connection ever made, in order (query as the client sent it) */
  history: { format: string; resume: number | null; hidden: boolean; at: number }[] = [];
  /** refuse the next N upgrades with HTTP 503 (reconnect tests) */
  refuseNext = 0;
  port = 0;
  /** answer the client's {"t":"ping"} (false: a dead-but-open peer) */
  answerPings = true;

  constructor(o: ProtoServerOptions = {}) {
    this.path = o.path ?? '/live';
    this.ringSize = o.ring ?? 64;
    this.seq = o.startSeq ?? 0;
    this.http = createServer((req, res) => {
      const p = new URL(req.url ?? '/', 'http://x').pathname;
      const file = o.files?.[p];
      const page = o.pages?.[p];
      if (file || page !== undefined) {
        res.setHeader('Content-Type', page !== undefined || file!.endsWith('.html') ? 'text/html' : 'text/javascript');
        res.setHeader('Cache-Control', 'no-store');
        res.setHeader('Access-Control-Allow-Origin', '*');
        res.end(page ?? readFileSync(file!));
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    this.wss = new WebSocketServer({ noServer: true });
    this.http.on('upgrade', (req: IncomingMessage, socket, head) => {
      const u = new URL(req.url ?? '/', 'http://x');
      if (u.pathname !== this.path) return socket.destroy();
      this.history.push({
        format: u.searchParams.get('format') ?? 'json',
        resume: u.searchParams.has('resume') ? Number(u.searchParams.get('resume')) : null,
        hidden: u.searchParams.get('hidden') === '1',
        at: Date.now(),
      });
      if (this.refuseNext > 0) {
        this.refuseNext--;
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, u.searchParams));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    this.port = (this.http.address() as AddressInfo).port;
    return `ws://127.0.0.1:${this.port}${this.path}`;
  }

  private accept(ws: WebSocket, q: URLSearchParams): void {
    const c: ProtoConn = {
      ws,
      format: q.get('format') === 'bin' ? 'bin' : 'json',
      resume: q.has('resume') ? Number(q.get('resume')) : null,
      hidden: q.get('hidden') === '1',
      query: q,
      received: [],
    };
    this.conns.add(c);
    ws.on('close', () => this.conns.delete(c));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(String(data)) as Record<string, unknown>;
      c.received.push(m);
      if (m.t === 'ping' && this.answerPings) ws.send(JSON.stringify({ v: 1, t: 'pong', ts: Date.now() }));
      if (m.t === 'visibility') {
        const was = c.hidden;
        c.hidden = m.hidden === true;
        if (was && !c.hidden) this.sendSnapshot(c);
      }
    });
    ws.send(JSON.stringify({ v: 1, t: 'hello', seq: this.seq, format: c.format, ring: this.ringSize }));
    if (c.hidden) return;
    if (c.resume !== null && c.resume <= this.seq) {
      const oldest = this.ring.length ? this.ring[0].seq : this.seq + 1;
      if (c.resume + 1 >= oldest) {
        for (const b of this.ring) if (b.seq > c.resume) this.sendBatch(c, b);
        return;
      }
      if (c.resume < this.seq) ws.send(JSON.stringify({ v: 1, t: 'gap', from: c.resume + 1, to: oldest - 1 }));
    }
    this.sendSnapshot(c);
  }

  private sendSnapshot(c: ProtoConn): void {
    const items = [...this.latest.values()];
    if (c.format === 'bin' && items.every((i) => typeof i.payload === 'number')) c.ws.send(encodeBinary(this.seq, Date.now(), items, 2));
    else c.ws.send(JSON.stringify({ v: 1, t: 'snapshot', seq: this.seq, items }));
  }

  private sendBatch(c: ProtoConn, b: ProtoBatch): void {
    if (c.hidden) return;
    if (c.format === 'bin' && b.items.every((i) => typeof i.payload === 'number' && Number.isFinite(i.payload))) c.ws.send(encodeBinary(b.seq, b.ts, b.items));
    else c.ws.send(JSON.stringify({ v: 1, t: 'batch', seq: b.seq, ts: b.ts, items: b.items }));
  }

  /** Makes one batch of `items` and sends it to every visible client. */
  publish(items: { topic: string; payload: unknown; ts?: number }[]): ProtoBatch {
    const now = Date.now();
    const b: ProtoBatch = { seq: ++this.seq, ts: now, items: items.map((i) => ({ topic: i.topic, payload: i.payload, ts: i.ts ?? now })) };
    for (const it of b.items) this.latest.set(it.topic, it);
    this.ring.push(b);
    if (this.ring.length > this.ringSize) this.ring.shift();
    for (const c of this.conns) this.sendBatch(c, b);
    return b;
  }

  /** Makes batches nobody receives (while clients are away), into the ring. */
  publishOffline(count: number, topic = 'w'): void {
    const keep = [...this.conns];
    this.conns.clear();
    for (let i = 0; i < count; i++) this.publish([{ topic, payload: i }]);
    for (const c of keep) this.conns.add(c);
  }

  /**
   * Publishes `sps` samples a second on `topic`, batched every `batchMs` (the
   * batcher's default delay, one frame), until the returned stop() is called.
   */
  feed(topic: string, sps: number, batchMs = 16, value: (t: number) => number = (t) => 50 + 20 * Math.sin(t / 700)): () => void {
    const t0 = Date.now();
    let sent = 0;
    const timer = setInterval(() => {
      const now = Date.now();
      const due = Math.floor(((now - t0) * sps) / 1000);
      if (due <= sent) return;
      const items: ProtoItem[] = [];
      for (; sent < due; sent++) {
        const ts = t0 + (sent * 1000) / sps;
        items.push({ topic, payload: value(ts), ts });
      }
      this.publish(items);
    }, batchMs);
    return () => clearInterval(timer);
  }

  /** Drops every socket without a close frame (a network cut). */
  dropAll(): void {
    for (const c of this.conns) c.ws.terminate();
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    this.wss.close();
    await new Promise<void>((r) => this.http.close(() => r()));
  }
}
