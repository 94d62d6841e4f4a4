// rt-ws-client.js: the browser client of rt-ws-batcher (wire protocol v1,
// docs/ws-batcher-protocol.md). A plain ES module with no build step and no
// dependency: connect, decode JSON and packed binary batches, reconnect with
// capped exponential backoff and full jitter, resume from the last sequence,
// report page visibility, and hand every batch to the page.
//
// Nothing here touches the DOM at import time: `document` and `WebSocket` are
// looked up when a client is created (both can be passed in, so the module runs
// in Node with the `ws` package for tests).
//
// Usage:
//   import { RtWsClient } from '/live/client.js';
//   const c = new RtWsClient({ path: '/live', format: 'bin' });
//   c.on('batch', (b) => { ... b.items (json) or b.topics/b.topicIndex/b.times/b.values (bin) ... });
//   c.connect();

export const PROTOCOL_VERSION = 1;

/** @typedef {'json'|'bin'} Format */

/**
 * One item of a JSON batch or snapshot.
 * @typedef {{ topic: string, payload: unknown, ts: number }} Item
 */

/**
 * A decoded batch or snapshot. JSON frames carry `items`; binary frames carry
 * the columns as typed-array views over the received frame (no copy), and
 * `items` is null. `pointCount` is the number of items or points either way.
 * @typedef {object} Batch
 * @property {'batch'|'snapshot'} type
 * @property {Format} format       the frame format it arrived in
 * @property {number} seq          the batch sequence (a snapshot: the sequence it stands for)
 * @property {number} ts           server time when the batch was flushed (ms since the epoch)
 * @property {number} coalesced    messages skipped for this client before this batch (a binary frame only flags it: 1)
 * @property {number} pointCount
 * @property {Item[]|null} items
 * @property {string[]|null} topics
 * @property {Uint16Array|null} topicIndex
 * @property {Float64Array|null} times
 * @property {Float64Array|null} values
 */

/**
 * A decoded control message (`hello`, `gap`, `close`, `pong`).
 * @typedef {{ t: string, [k: string]: unknown }} Control
 */

export const BIN_MAGIC0 = 0x52; // 'R'
export const BIN_MAGIC1 = 0x57; // 'W'
export const BIN_HEADER_BYTES = 24;
export const FLAG_COALESCED = 1;
export const FLAG_SNAPSHOT = 2;

const TWO32 = 4294967296;

/**
 * The full sequence number whose low 32 bits are `low32`, nearest to `ref`
 * (the last full sequence this client knows). Binary frames carry only the low
 * 32 bits; a stream would need 2^31 batches between two frames to confuse it.
 * @param {number} low32
 * @param {number|null} ref
 * @returns {number}
 */
export function widenSeq(low32, ref) {
  if (ref === null || !Number.isFinite(ref) || ref < 0) return low32;
  const base = ref - (ref % TWO32);
  let best = base + low32;
  for (const c of [best - TWO32, best + TWO32]) {
    if (c >= 0 && Math.abs(c - ref) < Math.abs(best - ref)) best = c;
  }
  return best;
}

const utf8 = typeof TextDecoder === 'function' ? new TextDecoder() : null;

/**
 * Decodes a packed binary frame (protocol v1, "Binary batch").
 * The columns are views over `data` when it is 8-byte aligned (an ArrayBuffer
 * from a browser WebSocket always is), a copy otherwise.
 * @param {ArrayBuffer|ArrayBufferView} data
 * @param {number|null} [refSeq] the last full sequence, to widen the 32-bit seq
 * @returns {Batch}
 */
export function decodeBinaryFrame(data, refSeq = null) {
  /** @type {ArrayBuffer} */
  let buf;
  let off = 0;
  let len;
  if (data instanceof ArrayBuffer) {
    buf = data;
    len = data.byteLength;
  } else if (ArrayBuffer.isView(data)) {
    if (data.byteOffset % 8 === 0 && data.buffer instanceof ArrayBuffer) {
      buf = data.buffer;
      off = data.byteOffset;
    } else {
      buf = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer;
    }
    len = data.byteLength;
  } else {
    throw new TypeError('binary frame: not an ArrayBuffer');
  }
  if (len < BIN_HEADER_BYTES) throw new RangeError(`binary frame: ${len} bytes, shorter than the ${BIN_HEADER_BYTES}-byte header`);
  const dv = new DataView(buf, off, len);
  if (dv.getUint8(0) !== BIN_MAGIC0 || dv.getUint8(1) !== BIN_MAGIC1) throw new RangeError('binary frame: bad magic');
  const version = dv.getUint8(2);
  if (version !== PROTOCOL_VERSION) throw new RangeError(`binary frame: version ${version}, expected ${PROTOCOL_VERSION}`);
  const flags = dv.getUint8(3);
  const seq = widenSeq(dv.getUint32(4, true), refSeq);
  const ts = dv.getFloat64(8, true);
  const nTopics = dv.getUint16(16, true);
  const n = dv.getUint32(20, true);
  let p = BIN_HEADER_BYTES;
  /** @type {string[]} */
  const topics = new Array(nTopics);
  const bytes = new Uint8Array(buf, off, len);
  for (let i = 0; i < nTopics; i++) {
    if (p + 2 > len) throw new RangeError('binary frame: topic table truncated');
    const bl = dv.getUint16(p, true);
    p += 2;
    if (p + bl > len) throw new RangeError('binary frame: topic name truncated');
    topics[i] = utf8 ? utf8.decode(bytes.subarray(p, p + bl)) : String.fromCharCode(...bytes.subarray(p, p + bl));
    p += bl + (bl & 1);
  }
  const align8 = (x) => (x + 7) & ~7;
  const idxOff = align8(p);
  const tsOff = align8(idxOff + 2 * n);
  const valOff = tsOff + 8 * n; // already 8-aligned
  if (valOff + 8 * n > len) throw new RangeError(`binary frame: ${n} points need ${valOff + 8 * n} bytes, frame has ${len}`);
  const topicIndex = new Uint16Array(buf, off + idxOff, n);
  for (let i = 0; i < n; i++) {
    if (topicIndex[i] >= nTopics) throw new RangeError(`binary frame: topic index ${topicIndex[i]} >= ${nTopics} topics`);
  }
  return {
    type: flags & FLAG_SNAPSHOT ? 'snapshot' : 'batch',
    format: 'bin',
    seq,
    ts,
    coalesced: flags & FLAG_COALESCED ? 1 : 0,
    pointCount: n,
    items: null,
    topics,
    topicIndex,
    times: new Float64Array(buf, off + tsOff, n),
    values: new Float64Array(buf, off + valOff, n),
  };
}

/**
 * Decodes a text frame: a JSON batch, a JSON snapshot, or a control message.
 * @param {string} text
 * @returns {{ kind: 'data', batch: Batch } | { kind: 'control', control: Control }}
 */
export function decodeTextFrame(text) {
  const m = JSON.parse(text);
  if (!m || typeof m !== 'object' || typeof m.t !== 'string') throw new TypeError('text frame: not a protocol message');
  if (m.v !== undefined && m.v !== PROTOCOL_VERSION) throw new RangeError(`text frame: version ${m.v}, expected ${PROTOCOL_VERSION}`);
  if (m.t === 'batch' || m.t === 'snapshot') {
    if (typeof m.seq !== 'number' || !Array.isArray(m.items)) throw new TypeError(`text frame: ${m.t} without seq or items`);
    return {
      kind: 'data',
      batch: {
        type: m.t,
        format: 'json',
        seq: m.seq,
        ts: typeof m.ts === 'number' ? m.ts : NaN,
        coalesced: typeof m.coalesced === 'number' ? m.coalesced : 0,
        pointCount: m.items.length,
        items: m.items,
        topics: null,
        topicIndex: null,
        times: null,
        values: null,
      },
    };
  }
  return { kind: 'control', control: m };
}

/**
 * Calls `fn(topic, ts, value)` for every numeric point of a batch, whatever its
 * format. JSON items count when `valueOf(item)` is a finite number (default:
 * the payload itself when it is a number).
 * @param {Batch} b
 * @param {(topic: string, ts: number, value: number) => void} fn
 * @param {(item: Item) => number} [valueOf]
 */
export function forEachPoint(b, fn, valueOf = defaultValueOf) {
  if (b.items) {
    for (let i = 0; i < b.items.length; i++) {
      const it = b.items[i];
      const v = valueOf(it);
      if (typeof v === 'number' && Number.isFinite(v)) fn(String(it.topic ?? ''), it.ts, v);
    }
  } else if (b.topics && b.topicIndex && b.times && b.values) {
    for (let i = 0; i < b.pointCount; i++) fn(b.topics[b.topicIndex[i]], b.times[i], b.values[i]);
  }
}

/** @param {Item} it */
export function defaultValueOf(it) {
  const p = it.payload;
  return typeof p === 'number' ? p : NaN;
}

/**
 * Reconnect delay for the `attempt`-th consecutive failure (0-based):
 * "full jitter", a uniform draw in [0, min(cap, base * 2^attempt)).
 * @param {number} attempt
 * @param {{ baseMs?: number, capMs?: number }} [o]
 * @param {() => number} [random]
 * @returns {number}
 */
export function backoffDelay(attempt, o = {}, random = Math.random) {
  const base = o.baseMs ?? 500;
  const cap = o.capMs ?? 30000;
  const ceiling = Math.min(cap, base * Math.pow(2, Math.min(Math.max(0, attempt), 30)));
  return Math.floor(random() * ceiling);
}

/**
 * The socket URL for a batcher path, from the page's location:
 * `ws:` for `http:` pages, `wss:` for `https:`, same host and port.
 * A full ws:// or wss:// URL is returned as it is.
 * @param {string} path
 * @param {{ protocol: string, host: string }} [loc]
 * @returns {string}
 */
export function socketUrl(path, loc = globalThis.location) {
  if (/^wss?:\/\//i.test(path)) return path;
  if (/^https?:\/\//i.test(path)) return path.replace(/^http/i, 'ws');
  if (!loc) throw new Error('rt-ws-client: no page location; give a full ws:// URL');
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${loc.host}${path.startsWith('/') ? '' : '/'}${path}`;
}

function safeSessionStorage() {
  try {
    return /** @type {any} */ (globalThis).sessionStorage ?? null;
  } catch {
    return null; // sandboxed frames throw on access
  }
}

/**
 * The client. Events (subscribe with `on(type, fn)`, which returns an
 * unsubscribe function): `batch` (a Batch, live or replayed), `snapshot` (a
 * Batch of type snapshot), `gap` ({from, to}), `hello`, `open`, `close`
 * ({code, reason, serverReason}), `error` (an Error), `direct` ({ts, items}:
 * messages the flow addressed to this client with msg._session.id = `id`),
 * `control` (any other control message), `stats` and `id` are properties.
 */
export class RtWsClient {
  /**
   * @param {object} [o]
   * @param {string} [o.url]            full ws:// URL (default: from `path` and the page's location)
   * @param {string} [o.path]           the batcher's path, e.g. '/live' (with httpNodeRoot when it is not '/')
   * @param {Format} [o.format]         'json' (default) or 'bin'
   * @param {number} [o.backoffBaseMs]  first reconnect ceiling, default 500
   * @param {number} [o.backoffCapMs]   reconnect ceiling cap, default 30000
   * @param {number} [o.pingMs]         ping interval; a socket that answers nothing for a whole interval is dropped and reconnected; 0 = off (default 15000)
   * @param {boolean} [o.resume]        resume with the last seq on reconnect (default true)
   * @param {boolean} [o.reportVisibility] send visibility changes (default true when there is a document)
   * @param {any} [o.storage]          where the last seq survives a page reload (default globalThis.sessionStorage; null = nowhere)
   * @param {any} [o.WebSocket]         a WebSocket constructor (default globalThis.WebSocket; in Node 20 pass `ws`)
   * @param {any} [o.document]          the document for visibility (default globalThis.document)
   * @param {() => number} [o.random]   for tests
   * @param {(b: Batch) => void} [o.onBatch]  shorthand for on('batch', ...)
   */
  constructor(o = {}) {
    this.options = o;
    this.format = o.format === 'bin' ? 'bin' : 'json';
    this.url = o.url ?? (o.path !== undefined ? socketUrl(o.path) : undefined);
    if (!this.url) throw new Error('rt-ws-client: give url or path');
    this.WebSocket = o.WebSocket ?? globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') throw new Error('rt-ws-client: no WebSocket constructor (pass options.WebSocket)');
    this.document = o.document !== undefined ? o.document : globalThis.document;
    this.random = o.random ?? Math.random;
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    /** the last batch sequence received (or stood for by a snapshot), null before any */
    this.lastSeq = /** @type {number|null} */ (null);
    /** the page was reported hidden on this socket */
    this.hidden = false;
    /** this connection's id from the server's hello (new on every connection); a flow message with msg._session.id = it comes to this client only ('direct') */
    this.id = /** @type {string|null} */ (null);
    this.stats = {
      connects: 0, // sockets that reached `hello`
      reconnects: 0, // connects after the first
      frames: 0, // every frame received
      bytes: 0, // their sizes (text frames: UTF-16 length)
      batches: 0, // batch frames handed to the page (live or replayed)
      points: 0, // items/points in them
      snapshots: 0,
      gaps: 0, // gap markers received
      gapBatches: 0, // batches the gap markers said were lost
      unexpectedGaps: 0, // seq jumps with no gap marker (protocol says: must not happen)
      duplicates: 0, // batches at or before the last seq, dropped
      coalesced: 0, // messages the server skipped for this client (binary frames count 1 per coalesced frame)
      decodeErrors: 0,
      serverRestarts: 0, // hello with a seq below ours: a new server stream
      lastSeq: /** @type {number|null} */ (null),
      connected: false,
    };
    this.attempt = 0;
    this.closed = true;
    /** @type {any} */
    this.ws = null;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pingSentAt = 0;
    this.lastRxAt = 0;
    this.gapPending = false;
    this.afterSnapshot = false;
    this.onVisibility = () => this.sendVisibility();
    // The last seq survives a reload of this tab (sessionStorage), so the new
    // page resumes where the old one stopped. Saved when the page goes away.
    this.storage = o.storage !== undefined ? o.storage : safeSessionStorage();
    this.storageKey = `rt-ws-client:${this.url}:${this.format}`;
    this.onPageHide = () => this.saveSeq();
    if (this.storage && this.options.resume !== false) {
      try {
        const v = this.storage.getItem(this.storageKey);
        if (v !== null && /^\d+$/.test(v)) this.setSeq(Number(v));
      } catch {
        /* storage refused: no resume across reloads */
      }
    }
    if (o.onBatch) this.on('batch', o.onBatch);
  }

  /**
   * @param {string} type
   * @param {Function} fn
   * @returns {() => void} unsubscribe
   */
  on(type, fn) {
    let s = this.listeners.get(type);
    if (!s) this.listeners.set(type, (s = new Set()));
    s.add(fn);
    return () => s.delete(fn);
  }

  /** @param {string} type @param {unknown} arg */
  emit(type, arg) {
    const s = this.listeners.get(type);
    if (!s) return;
    for (const fn of s) {
      try {
        fn(arg);
      } catch (e) {
        if (type !== 'error') this.emit('error', e);
      }
    }
  }

  /** Opens the socket (and keeps it open until close()). */
  connect() {
    if (!this.closed) return this;
    this.closed = false;
    if (this.document && this.options.reportVisibility !== false && typeof this.document.addEventListener === 'function') {
      this.document.addEventListener('visibilitychange', this.onVisibility);
    }
    const g = /** @type {any} */ (globalThis);
    if (this.storage && typeof g.addEventListener === 'function') g.addEventListener('pagehide', this.onPageHide);
    this.open();
    return this;
  }

  /** Stores the last seq for the next page of this tab (called on pagehide and close). */
  saveSeq() {
    if (!this.storage || this.lastSeq === null) return;
    try {
      this.storage.setItem(this.storageKey, String(this.lastSeq));
    } catch {
      /* storage full or refused */
    }
  }

  /** The URL of the next connect: format, resume and hidden query parameters. */
  connectUrl() {
    const u = new URL(this.url);
    u.searchParams.set('format', this.format);
    if (this.options.resume !== false && this.lastSeq !== null) u.searchParams.set('resume', String(this.lastSeq));
    else u.searchParams.delete('resume');
    if (this.pageHidden()) u.searchParams.set('hidden', '1');
    else u.searchParams.delete('hidden');
    return u.toString();
  }

  pageHidden() {
    return !!(this.document && this.options.reportVisibility !== false && this.document.hidden);
  }

  open() {
    const url = this.connectUrl();
    this.hidden = this.pageHidden();
    this.gapPending = false;
    this.afterSnapshot = false;
    let ws;
    try {
      ws = new this.WebSocket(url);
    } catch (e) {
      this.emit('error', e);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    /** @type {string|undefined} */
    let serverReason;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastRxAt = Date.now();
      this.emit('open', { url });
      this.startPing();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      const r = this.handleFrame(ev.data);
      if (r && r.t === 'close') serverReason = /** @type {string} */ (r.reason);
    };
    ws.onerror = () => {
      if (this.ws !== ws) return;
      this.emit('error', new Error(`rt-ws-client: socket error on ${url}`));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stats.connected = false;
      this.stopPing();
      this.emit('close', { code: ev.code, reason: ev.reason, serverReason });
      if (!this.closed) this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    if (this.closed || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt++, { baseMs: this.options.backoffBaseMs, capMs: this.options.backoffCapMs }, this.random);
    this.emit('reconnecting', { delay, attempt: this.attempt });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closed) this.open();
    }, delay);
  }

  startPing() {
    const ms = this.options.pingMs ?? 15000;
    if (!ms) return;
    this.pingSentAt = 0;
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws || ws.readyState !== 1) return;
      // Throttled timers (hidden tabs) may tick late: only a ping that went
      // unanswered while nothing at all arrived marks the socket dead.
      if (this.pingSentAt && this.lastRxAt < this.pingSentAt) {
        try {
          ws.close(4000, 'no answer');
        } catch {
          /* closing anyway */
        }
        return;
      }
      this.send({ t: 'ping' });
      this.pingSentAt = Date.now();
    }, ms);
  }

  stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** @param {object} m */
  send(m) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(m));
    return true;
  }

  sendVisibility() {
    const hidden = this.pageHidden();
    if (hidden === this.hidden) return;
    if (this.send({ t: 'visibility', hidden })) this.hidden = hidden;
  }

  /**
   * Decodes one received frame and dispatches it. Returns the control message
   * when it was one. Exposed for tests and for pages that own their socket.
   * @param {string|ArrayBuffer|ArrayBufferView} data
   * @returns {Control|null}
   */
  handleFrame(data) {
    const st = this.stats;
    st.frames++;
    this.lastRxAt = Date.now();
    /** @type {Batch} */
    let batch;
    try {
      if (typeof data === 'string') {
        st.bytes += data.length;
        const d = decodeTextFrame(data);
        if (d.kind === 'control') {
          this.handleControl(d.control);
          return d.control;
        }
        batch = d.batch;
      } else {
        st.bytes += data.byteLength;
        batch = decodeBinaryFrame(data, this.lastSeq);
      }
    } catch (e) {
      st.decodeErrors++;
      this.emit('error', e);
      return null;
    }
    if (batch.type === 'snapshot') {
      st.snapshots++;
      this.gapPending = false;
      this.afterSnapshot = true;
      this.setSeq(batch.seq);
      this.emit('snapshot', batch);
      return null;
    }
    // A snapshot stands for the batches up to its seq; the first live batch
    // after it is taken even if it carries that same seq.
    const after = this.afterSnapshot;
    this.afterSnapshot = false;
    if (this.lastSeq !== null && (batch.seq < this.lastSeq || (batch.seq === this.lastSeq && !after))) {
      st.duplicates++;
      return null;
    }
    if (this.lastSeq !== null && batch.seq > this.lastSeq + 1 && !this.gapPending) st.unexpectedGaps++;
    this.gapPending = false;
    this.setSeq(batch.seq);
    st.batches++;
    st.points += batch.pointCount;
    st.coalesced += batch.coalesced;
    this.emit('batch', batch);
    return null;
  }

  /** @param {number} seq */
  setSeq(seq) {
    this.lastSeq = seq;
    this.stats.lastSeq = seq;
  }

  /** @param {Control} c */
  handleControl(c) {
    const st = this.stats;
    switch (c.t) {
      case 'hello': {
        st.connects++;
        if (st.connects > 1) st.reconnects++;
        st.connected = true;
        this.attempt = 0;
        this.id = typeof c.id === 'string' ? c.id : null;
        const seq = typeof c.seq === 'number' ? c.seq : null;
        if (seq !== null && this.lastSeq !== null && seq < this.lastSeq) {
          // A new server stream (Node-RED restarted or redeployed the node):
          // our seq means nothing to it; start over from what it sends.
          st.serverRestarts++;
          this.lastSeq = null;
          st.lastSeq = null;
        }
        // The page may have been hidden or shown while connecting.
        this.sendVisibility();
        this.emit('hello', c);
        break;
      }
      case 'gap': {
        st.gaps++;
        const from = Number(c.from);
        const to = Number(c.to);
        if (Number.isFinite(from) && Number.isFinite(to) && to >= from) st.gapBatches += to - from + 1;
        this.gapPending = true;
        this.emit('gap', { from, to });
        break;
      }
      case 'direct':
        // Messages addressed to this client only (outside the sequence): { ts, items }
        if (Array.isArray(c.items)) this.emit('direct', { ts: typeof c.ts === 'number' ? c.ts : NaN, items: c.items });
        break;
      case 'close':
        this.emit('control', c);
        break;
      default:
        this.emit('control', c);
    }
  }

  /** Closes the socket for good (no reconnect). */
  close() {
    this.saveSeq();
    const g = /** @type {any} */ (globalThis);
    if (typeof g.removeEventListener === 'function') g.removeEventListener('pagehide', this.onPageHide);
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopPing();
    if (this.document && typeof this.document.removeEventListener === 'function') {
      this.document.removeEventListener('visibilitychange', this.onVisibility);
    }
    const ws = this.ws;
    this.ws = null;
    this.stats.connected = false;
    if (ws) {
      try {
        ws.close(1000, 'client closed');
      } catch {
        /* already closing */
      }
    }
  }
}
