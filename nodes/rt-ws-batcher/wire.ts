// The rt-ws-batcher wire format (docs/ws-batcher-protocol.md, version 1):
// JSON batches and controls, and the packed binary batch for numeric series.
// Pure: no Node-RED, no sockets, no threads.

export const PROTOCOL_VERSION = 1;
export const BIN_MAGIC0 = 0x52; // 'R'
export const BIN_MAGIC1 = 0x57; // 'W'
export const BIN_HEADER_BYTES = 24;
export const FLAG_COALESCED = 1;
export const FLAG_SNAPSHOT = 2;

/** One message, serialised once when it is enqueued. */
export interface Item {
  topic: string;
  /** The payload as JSON text (serialised once, shared by every client). */
  json: string;
  /** The payload when it is a finite number, else NaN (binary frames carry only these). */
  num: number;
  /** Epoch ms (fractional) when it was enqueued. */
  ts: number;
  /** process.hrtime in us when it was enqueued (enqueue-to-send latency); 0 = unknown. */
  enqUs: number;
}

const topicJsonCache = new Map<string, string>();
/** JSON of a topic string, cached for the first 4096 topics seen (topics repeat). */
export function topicJson(topic: string): string {
  let j = topicJsonCache.get(topic);
  if (j === undefined) {
    j = JSON.stringify(topic);
    if (topicJsonCache.size < 4096) topicJsonCache.set(topic, j);
  }
  return j;
}

/** A JSON number as the protocol writes it (fractional ms kept to 0.1 us). */
const num = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 1e4) / 1e4) : 'null');

function itemsJson(items: readonly Item[]): string {
  let s = '[';
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (i > 0) s += ',';
    s += '{"topic":' + topicJson(it.topic) + ',"payload":' + it.json + ',"ts":' + num(it.ts) + '}';
  }
  return s + ']';
}

export function jsonBatch(seq: number, ts: number, items: readonly Item[], coalesced = 0): string {
  return '{"v":1,"t":"batch","seq":' + seq + ',"ts":' + num(ts) + (coalesced > 0 ? ',"coalesced":' + coalesced : '') + ',"items":' + itemsJson(items) + '}';
}

export function jsonSnapshot(seq: number, items: readonly Item[]): string {
  return '{"v":1,"t":"snapshot","seq":' + seq + ',"items":' + itemsJson(items) + '}';
}

export const jsonHello = (seq: number, format: 'json' | 'bin', ring: number, id?: string): string => JSON.stringify({ v: 1, t: 'hello', seq, format, ring, id });

/** Messages addressed to one client (msg._session.id): outside the sequence, the ring and the snapshot. */
export function jsonDirect(ts: number, items: readonly Item[]): string {
  return '{"v":1,"t":"direct","ts":' + num(ts) + ',"items":' + itemsJson(items) + '}';
}
export const jsonGap = (from: number, to: number): string => JSON.stringify({ v: 1, t: 'gap', from, to });
export const jsonClose = (reason: string): string => JSON.stringify({ v: 1, t: 'close', reason });
export const jsonPong = (ts: number): string => JSON.stringify({ v: 1, t: 'pong', ts });

/** True when every item can go in a binary frame (a finite number payload). */
export function allNumeric(items: readonly Item[]): boolean {
  for (let i = 0; i < items.length; i++) if (!Number.isFinite(items[i].num)) return false;
  return true;
}

const pad = (n: number, to: number): number => (n + (to - 1)) & ~(to - 1);

/**
 * The packed binary batch: 24-byte header, topic table (u16 length + UTF-8,
 * each name padded to 2 bytes), then the columns u16 topicIndex[N], f64 ts[N],
 * f64 value[N], each starting 8-byte aligned from the frame's start.
 * Little-endian. Every item must be numeric (allNumeric).
 */
export function binBatch(seq: number, ts: number, items: readonly Item[], flags = 0): Buffer {
  const index = new Map<string, number>();
  const names: Buffer[] = [];
  const idx = new Uint16Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const t = items[i].topic;
    let k = index.get(t);
    if (k === undefined) {
      k = names.length;
      if (k >= 0xffff) throw new RangeError('more than 65535 topics in one batch');
      index.set(t, k);
      names.push(Buffer.from(t, 'utf8'));
    }
    idx[i] = k;
  }
  let off = BIN_HEADER_BYTES;
  for (const n of names) off += 2 + pad(n.length, 2);
  const idxOff = pad(off, 8);
  const tsOff = pad(idxOff + 2 * items.length, 8);
  const valOff = tsOff + 8 * items.length;
  const total = valOff + 8 * items.length;
  const buf = Buffer.alloc(total);
  buf[0] = BIN_MAGIC0;
  buf[1] = BIN_MAGIC1;
  buf[2] = PROTOCOL_VERSION;
  buf[3] = flags;
  buf.writeUInt32LE(seq >>> 0, 4);
  buf.writeDoubleLE(ts, 8);
  buf.writeUInt16LE(names.length, 16);
  buf.writeUInt16LE(0, 18);
  buf.writeUInt32LE(items.length, 20);
  let p = BIN_HEADER_BYTES;
  for (const n of names) {
    buf.writeUInt16LE(n.length, p);
    n.copy(buf, p + 2);
    p += 2 + pad(n.length, 2);
  }
  for (let i = 0; i < items.length; i++) {
    buf.writeUInt16LE(idx[i], idxOff + 2 * i);
    buf.writeDoubleLE(items[i].ts, tsOff + 8 * i);
    buf.writeDoubleLE(items[i].num, valOff + 8 * i);
  }
  return buf;
}

export interface DecodedBin {
  version: number;
  flags: number;
  seq: number;
  ts: number;
  topics: string[];
  points: Array<{ topic: string; ts: number; value: number }>;
}

/** Decodes a binary batch (tests, benchmarks; the browser client has its own). */
export function decodeBin(b: Uint8Array): DecodedBin {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf[0] !== BIN_MAGIC0 || buf[1] !== BIN_MAGIC1) throw new Error('bad magic');
  const t = buf.readUInt16LE(16);
  const n = buf.readUInt32LE(20);
  const topics: string[] = [];
  let p = BIN_HEADER_BYTES;
  for (let i = 0; i < t; i++) {
    const len = buf.readUInt16LE(p);
    topics.push(buf.toString('utf8', p + 2, p + 2 + len));
    p += 2 + pad(len, 2);
  }
  const idxOff = pad(p, 8);
  const tsOff = pad(idxOff + 2 * n, 8);
  const valOff = tsOff + 8 * n;
  const points = [];
  for (let i = 0; i < n; i++) {
    points.push({ topic: topics[buf.readUInt16LE(idxOff + 2 * i)], ts: buf.readDoubleLE(tsOff + 8 * i), value: buf.readDoubleLE(valOff + 8 * i) });
  }
  return { version: buf[2], flags: buf[3], seq: buf.readUInt32LE(4), ts: buf.readDoubleLE(8), topics, points };
}

/**
 * Serialises one payload for the wire. Throws on what JSON cannot carry
 * (a circular structure, a BigInt). undefined becomes null.
 */
export function serialisePayload(payload: unknown): { json: string; num: number } {
  if (typeof payload === 'number') return Number.isFinite(payload) ? { json: String(payload), num: payload } : { json: 'null', num: NaN };
  const json = JSON.stringify(payload);
  return { json: json === undefined ? 'null' : json, num: NaN };
}
