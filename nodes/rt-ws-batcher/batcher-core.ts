// The batcher's logic, shared by both modes (Node-RED's thread in shared mode,
// the batcher's own worker thread in worker mode): batching (size or delay),
// one serialisation per batch for every client, the sequence and its bounded
// ring, the snapshot (latest item per topic), resume, visibility, and the
// per-client byte cap with coalescing and eviction. Sockets are behind the
// small Conn interface; clock and timers are injected. No Node-RED, no threads.
import type { SharedHistogram, SharedMetrics } from '../shared/shared-metrics';
import type { MetricSpec } from '../shared/shared-metrics';
import {
  allNumeric,
  binBatch,
  FLAG_COALESCED,
  FLAG_SNAPSHOT,
  type Item,
  jsonBatch,
  jsonClose,
  jsonDirect,
  jsonGap,
  jsonHello,
  jsonPong,
  jsonSnapshot,
} from './wire';

/** Counters, the clients gauge and the latency histogram (seconds), in shared memory. */
export const WS_METRICS: MetricSpec = {
  counters: [
    'batches',
    'messages',
    'frames',
    'bytes_raw',
    'bytes_wire',
    'coalesced_batches',
    'skipped_slow',
    'skipped_hidden',
    'skipped_topics',
    'direct',
    'skipped_no_client',
    'evictions',
    'resumes_replay',
    'resumes_snapshot',
    'connections',
    'refused',
  ],
  /** queued_max: the most bytes queued for one client, at the last batch. */
  gauges: ['clients', 'queued_max'],
  histograms: ['latency'],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.016, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
};

/** Batch sizes (messages per batch): observed as "us", bucket bounds are counts / 1e6. */
export const BATCH_SIZE_BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
export const BATCH_METRICS: MetricSpec = {
  histograms: ['size'],
  buckets: BATCH_SIZE_BOUNDS.map((n) => n / 1e6),
};

/** One client socket, as the hub sees it. */
export interface Conn {
  /** Bytes queued for this client and not yet handed to the kernel. */
  buffered(): number;
  send(data: string | Buffer): void;
  /** Close with a code and reason (a socket that cannot take the close frame is cut soon after). */
  close(code: number, reason: string): void;
  /** Bytes written to the socket so far (after compression), or -1 when unknown. */
  wireBytes(): number;
}

export interface HubOptions {
  /** Flush when this many messages are pending. */
  batchSize: number;
  /** ... or this long after the first pending one (ms). */
  delayMs: number;
  /** Batches kept for resume. */
  ringBatches: number;
  /** ... and at most this many bytes of them (JSON size). */
  ringBytes: number;
  /** Per-client cap on queued bytes; over it the client gets coalesced batches. */
  capBytes: number;
  /** A client over its cap for this long is closed (4001 slow-client). */
  graceMs: number;
  /** Topics kept in the snapshot (latest per topic); more are not kept (counted). */
  maxTopics: number;
}

export const DEFAULT_HUB: HubOptions = {
  batchSize: 100,
  delayMs: 16,
  ringBatches: 256,
  ringBytes: 4 * 1024 * 1024,
  capBytes: 1024 * 1024,
  graceMs: 10_000,
  maxTopics: 1000,
};

export interface HubDeps {
  nowMs(): number;
  nowUs(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(h: unknown): void;
  metrics: SharedMetrics;
  batchSize: SharedHistogram;
  /** Every batch made (dashboard mode). */
  onBatch?(b: Batch): void;
  /** The number of connected clients changed. */
  onClients?(n: number): void;
}

export class Batch {
  private _json: string | null = null;
  private _bin: Buffer | null | undefined;
  readonly numeric: boolean;
  readonly jsonBytes: number;
  constructor(
    readonly seq: number,
    readonly ts: number,
    readonly items: readonly Item[],
  ) {
    this.numeric = allNumeric(items);
    let n = 40;
    for (const it of items) n += it.json.length + it.topic.length + 40;
    this.jsonBytes = n;
  }
  get json(): string {
    if (this._json === null) this._json = jsonBatch(this.seq, this.ts, this.items);
    return this._json;
  }
  /** The binary frame, or null when an item is not numeric. */
  get bin(): Buffer | null {
    if (this._bin === undefined) this._bin = this.numeric ? binBatch(this.seq, this.ts, this.items) : null;
    return this._bin;
  }
}

export type Format = 'json' | 'bin';

export interface ClientInfo {
  format: Format;
  /** The client's id (hello frame; a message whose _session.id is this goes to this client only). */
  id?: string;
  /** The last sequence the client received (it reconnects), or undefined. */
  resume?: number;
  hidden?: boolean;
}

export class Client {
  hidden = false;
  /** Messages not delivered one by one since its last batch (over the cap). */
  skipped = 0;
  /** Topics changed while over the cap. */
  readonly dirty = new Set<string>();
  overSince = -1;
  closed = false;
  ack = -1;
  lastWire = 0;
  /** Messages addressed to this client only, sent at the next flush. */
  direct: Item[] = [];
  constructor(
    readonly conn: Conn,
    readonly format: Format,
    readonly id: string,
  ) {}
}

export class Hub {
  private seq = 0;
  private pending: Item[] = [];
  private timer: unknown = null;
  private housekeeper: unknown = null;
  private readonly ring: Batch[] = [];
  private ringBytesNow = 0;
  private readonly latest = new Map<string, Item>();
  readonly clients = new Set<Client>();
  private readonly byId = new Map<string, Client>();
  /** Clients with direct messages waiting. */
  private readonly directPending = new Set<Client>();
  private closed = false;
  private readonly m: SharedMetrics;

  constructor(
    readonly opts: HubOptions,
    private readonly deps: HubDeps,
  ) {
    this.m = deps.metrics;
  }

  get currentSeq(): number {
    return this.seq;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Adds one message (already serialised). */
  enqueue(item: Item): void {
    if (this.closed) return;
    this.pending.push(item);
    if (this.pending.length >= this.opts.batchSize) this.flush();
    else if (this.timer === null) this.timer = this.deps.setTimer(() => this.onTimer(), this.opts.delayMs);
  }

  /**
   * Adds one message for the client with this id only (a reply, as core
   * `websocket out` does with msg._session). It goes in a "direct" frame at the
   * next flush, outside the sequence, the ring and the snapshot. No such
   * client (gone, or never was): counted (skipped, reason no-client) and
   * dropped. A client over its byte cap: counted as slow-client and dropped.
   */
  enqueueTo(id: string, item: Item): void {
    if (this.closed) return;
    const c = this.byId.get(id);
    if (!c || c.closed) {
      this.m.inc('skipped_no_client');
      return;
    }
    c.direct.push(item);
    this.directPending.add(c);
    if (this.timer === null) this.timer = this.deps.setTimer(() => this.onTimer(), this.opts.delayMs);
  }

  private flushDirect(): void {
    if (this.directPending.size === 0) return;
    const lat = this.m.histogram('latency');
    for (const c of this.directPending) {
      const items = c.direct;
      c.direct = [];
      if (c.closed || items.length === 0) continue;
      if (c.hidden || c.skipped > 0 || c.conn.buffered() > this.opts.capBytes) {
        this.m.inc(c.hidden ? 'skipped_hidden' : 'skipped_slow', items.length);
        continue;
      }
      this.sendFrame(c, jsonDirect(this.deps.nowMs(), items));
      this.m.inc('direct', items.length);
      const now = this.deps.nowUs();
      for (const it of items) if (it.enqUs > 0) lat.observeUs(now - it.enqUs);
    }
    this.directPending.clear();
  }

  private onTimer(): void {
    this.timer = null;
    this.flush();
  }

  /** Makes a batch of what is pending and sends it to every client. */
  flush(): void {
    if (this.timer !== null) {
      this.deps.clearTimer(this.timer);
      this.timer = null;
    }
    if (this.closed) return;
    this.flushDirect();
    if (this.pending.length === 0) return;
    const items = this.pending;
    this.pending = [];
    const b = new Batch(++this.seq, this.deps.nowMs(), items);
    for (const it of items) this.remember(it);
    this.ring.push(b);
    this.ringBytesNow += b.jsonBytes;
    while (this.ring.length > this.opts.ringBatches || (this.ring.length > 1 && this.ringBytesNow > this.opts.ringBytes)) {
      this.ringBytesNow -= this.ring.shift()!.jsonBytes;
    }
    let qmax = 0;
    for (const c of this.clients) {
      this.deliver(c, b);
      if (!c.closed) qmax = Math.max(qmax, c.conn.buffered());
    }
    const m = this.m;
    m.setGauge('queued_max', qmax);
    m.inc('batches');
    m.inc('messages', items.length);
    this.deps.batchSize.observeUs(items.length);
    const now = this.deps.nowUs();
    const lat = m.histogram('latency');
    for (const it of items) if (it.enqUs > 0) lat.observeUs(now - it.enqUs);
    this.sampleWire();
    this.deps.onBatch?.(b);
  }

  private remember(it: Item): void {
    if (this.latest.has(it.topic) || this.latest.size < this.opts.maxTopics) this.latest.set(it.topic, it);
    else this.m.inc('skipped_topics');
  }

  private sendFrame(c: Client, data: string | Buffer): void {
    if (c.closed) return;
    c.conn.send(data);
    this.m.inc('frames');
    this.m.inc('bytes_raw', data.length);
  }

  private deliver(c: Client, b: Batch): void {
    if (c.closed) return;
    if (c.hidden) {
      this.m.inc('skipped_hidden', b.items.length);
      return;
    }
    if (c.skipped > 0 || c.conn.buffered() > this.opts.capBytes) {
      c.skipped += b.items.length;
      for (const it of b.items) if (this.latest.has(it.topic)) c.dirty.add(it.topic);
      this.m.inc('skipped_slow', b.items.length);
      this.drainOrEvict(c);
      return;
    }
    c.overSince = -1;
    const bin = c.format === 'bin' ? b.bin : null;
    this.sendFrame(c, bin ?? b.json);
  }

  /** A client with skipped messages: a coalesced batch once it is under the cap, eviction after the grace time. */
  private drainOrEvict(c: Client): void {
    const now = this.deps.nowMs();
    if (c.conn.buffered() <= this.opts.capBytes) {
      const items: Item[] = [];
      for (const t of c.dirty) {
        const it = this.latest.get(t);
        if (it) items.push(it);
      }
      const n = Math.max(1, c.skipped - items.length);
      c.skipped = 0;
      c.dirty.clear();
      c.overSince = -1;
      this.m.inc('coalesced_batches');
      const bin = c.format === 'bin' && allNumeric(items) && items.length > 0;
      this.sendFrame(c, bin ? binBatch(this.seq, this.deps.nowMs(), items, FLAG_COALESCED) : jsonBatch(this.seq, this.deps.nowMs(), items, n));
      return;
    }
    if (c.overSince < 0) c.overSince = now;
    this.armHousekeeper();
    if (now - c.overSince >= this.opts.graceMs) this.evict(c, 'slow-client', 4001);
  }

  private armHousekeeper(): void {
    if (this.housekeeper !== null || this.closed) return;
    const every = Math.max(20, Math.min(250, this.opts.graceMs / 4));
    this.housekeeper = this.deps.setTimer(() => {
      this.housekeeper = null;
      let again = false;
      for (const c of this.clients) {
        if (c.closed || c.hidden || c.skipped === 0) continue;
        this.drainOrEvict(c);
        if (!c.closed && c.skipped > 0) again = true;
      }
      if (again) this.armHousekeeper();
    }, every);
  }

  private evict(c: Client, reason: string, code: number): void {
    this.m.inc('evictions');
    this.closeClient(c, reason, code);
  }

  private closeClient(c: Client, reason: string, code: number): void {
    if (c.closed) return;
    try {
      c.conn.send(jsonClose(reason));
    } catch {
      /* socket already gone */
    }
    c.closed = true;
    this.removeClient(c);
    c.conn.close(code, reason);
  }

  private snapshot(c: Client): void {
    const items = [...this.latest.values()];
    if (c.format === 'bin' && items.length > 0 && allNumeric(items)) this.sendFrame(c, binBatch(this.seq, this.deps.nowMs(), items, FLAG_SNAPSHOT));
    else this.sendFrame(c, jsonSnapshot(this.seq, items));
  }

  /** A client connected: hello, then a snapshot, the batches it missed, or a gap and a snapshot. */
  addClient(conn: Conn, info: ClientInfo): Client {
    const c = new Client(conn, info.format, info.id ?? '');
    c.lastWire = conn.wireBytes();
    if (this.closed) {
      conn.close(1001, 'shutdown');
      c.closed = true;
      return c;
    }
    this.clients.add(c);
    if (c.id) this.byId.set(c.id, c);
    this.m.inc('connections');
    this.m.setGauge('clients', this.clients.size);
    this.deps.onClients?.(this.clients.size);
    this.sendFrame(c, jsonHello(this.seq, c.format, this.opts.ringBatches, c.id || undefined));
    if (info.hidden) {
      c.hidden = true;
      return c;
    }
    const r = info.resume;
    if (r === undefined || !Number.isInteger(r) || r < 0) {
      this.snapshot(c);
      return c;
    }
    if (r === this.seq) {
      this.m.inc('resumes_replay');
      return c;
    }
    const oldest = this.ring.length > 0 ? this.ring[0].seq : this.seq + 1;
    if (r < this.seq && r + 1 >= oldest) {
      this.m.inc('resumes_replay');
      for (const b of this.ring) {
        if (b.seq <= r) continue;
        const bin = c.format === 'bin' ? b.bin : null;
        this.sendFrame(c, bin ?? b.json);
      }
      return c;
    }
    this.m.inc('resumes_snapshot');
    // r > seq: the server started again (its sequence restarted): from 0.
    this.sendFrame(c, r > this.seq ? jsonGap(0, this.seq) : jsonGap(r + 1, oldest - 1));
    this.snapshot(c);
    return c;
  }

  /** A text frame from a client (visibility, ack, ping). Anything else is ignored. */
  onMessage(c: Client, text: string): void {
    if (c.closed || text.length > 4096) return;
    let m: { t?: unknown; hidden?: unknown; seq?: unknown };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return;
    }
    if (!m || typeof m !== 'object') return;
    if (m.t === 'visibility') {
      if (m.hidden === true) {
        c.hidden = true;
        c.skipped = 0;
        c.dirty.clear();
        c.overSince = -1;
      } else if (m.hidden === false && c.hidden) {
        c.hidden = false;
        this.snapshot(c);
      }
    } else if (m.t === 'ack' && typeof m.seq === 'number') c.ack = m.seq;
    else if (m.t === 'ping') this.sendFrame(c, jsonPong(this.deps.nowMs()));
  }

  /** The socket closed (by the client or the network). */
  removeClient(c: Client): void {
    c.closed = true;
    c.direct = [];
    this.directPending.delete(c);
    if (this.byId.get(c.id) === c) this.byId.delete(c.id);
    if (!this.clients.delete(c)) return;
    this.sampleWireOf(c);
    this.m.setGauge('clients', this.clients.size);
    this.deps.onClients?.(this.clients.size);
  }

  private sampleWireOf(c: Client): void {
    const w = c.conn.wireBytes();
    if (w >= 0 && w > c.lastWire) {
      this.m.inc('bytes_wire', w - c.lastWire);
      c.lastWire = w;
    }
  }

  private sampleWire(): void {
    for (const c of this.clients) this.sampleWireOf(c);
  }

  /** Redeploy / shutdown: every socket is closed (1001 shutdown), timers cleared; what is pending is sent first. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.timer !== null) this.deps.clearTimer(this.timer);
    if (this.housekeeper !== null) this.deps.clearTimer(this.housekeeper);
    this.timer = this.housekeeper = null;
    for (const c of [...this.clients]) this.closeClient(c, 'shutdown', 1001);
  }
}
