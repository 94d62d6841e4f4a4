// Per-node latency bookkeeping behind the messaging hooks: a message is
// stamped when a node is about to receive it (onReceive) and timed when that
// node reports it complete (onComplete, i.e. it called done()). Pure: the
// adapter unpacks Node-RED's hook events and calls receive()/complete().
//
// Memory is bounded whatever the traffic:
//  - at most `maxNodes` nodes are tracked (the rest are counted as skipped);
//  - each node holds at most `maxPending` stamps (messages received and not
//    yet complete: nodes that never call done(), or that hold messages, like
//    join or delay); beyond that the oldest stamp is evicted and counted;
//  - each tracked node's histogram has a fixed size (hist-core).
//
// Cost: every message is counted, but reading the clock twice per message is
// what costs most (~70-100 ns a read on a VM). So when a node is busy, only a
// random subset of its messages is timed: at most `timedPerSecond` per node
// (adapt() recomputes each node's 1-in-N stride from its last slot's rate).
// The subset is random, so the percentiles are unbiased; at 200 per second a
// node has 1000 timed samples within 5 s.
import { LocalHistogram } from './hist-core';

export interface NodeInfo {
  id: string;
  type: string;
  name: string;
}

export class NodeTracker {
  readonly hist = new LocalHistogram();
  /**
   * Fast path: most nodes finish a message before the next one arrives, so the
   * stamp of the message in progress is kept in two fields (no Map churn on the
   * hot path); only messages received while another is pending use `pending`.
   */
  slotId: string | undefined = undefined;
  slotT = 0;
  /** msgid -> receive time (ms, performance.now()); a msgid received twice before completion keeps a FIFO. */
  readonly pending = new Map<string, number | number[]>();
  received = 0;
  /** messages timed to completion */
  completed = 0;
  evicted = 0;
  /** time 1 in `stride` messages (1: every message) */
  stride = 1;
  /** `received` at the last adapt() */
  lastReceived = 0;
  constructor(readonly info: NodeInfo) {}
}

export interface HookBookOptions {
  /** Node ids or types to time; empty = every node. */
  filter?: readonly string[];
  /** Node ids never timed (the monitor itself). */
  exclude?: readonly string[];
  maxNodes?: number;
  maxPending?: number;
  /** messages timed per node per second at most (0: time every message) */
  timedPerSecond?: number;
}

export function parseFilter(text: unknown): string[] {
  if (typeof text !== 'string') return [];
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The parts of a Node-RED node the book reads (only when it first sees the node). */
export interface NodeLike {
  type?: string;
  name?: string;
}

export class HookBook {
  readonly trackers = new Map<string, NodeTracker>();
  /** Every node id seen: its tracker, or null when it is not timed (filtered out, excluded, over the cap). */
  private readonly seen = new Map<string, NodeTracker | null>();
  private readonly filter: Set<string> | null;
  private readonly exclude: Set<string>;
  readonly maxNodes: number;
  readonly maxPending: number;
  readonly timedPerSecond: number;
  private rng = 0x9e3779b9;
  /** Receives for nodes not tracked because of the node cap. */
  skipped = 0;
  /** Stamps dropped because a node held more than maxPending messages. */
  evicted = 0;
  /** Completions with no stamp: not timed (sampled out), evicted, or received before the hooks were added. */
  untimed = 0;

  constructor(opts: HookBookOptions = {}) {
    this.filter = opts.filter && opts.filter.length > 0 ? new Set(opts.filter) : null;
    this.exclude = new Set(opts.exclude ?? []);
    this.maxNodes = opts.maxNodes ?? 200;
    this.maxPending = opts.maxPending ?? 1000;
    this.timedPerSecond = opts.timedPerSecond ?? 200;
  }

  /**
   * Called every `slotMs` while the hooks are on: sets each node's stride so
   * that about timedPerSecond of its messages per second are timed.
   */
  adapt(slotMs: number): void {
    const budget = (this.timedPerSecond * slotMs) / 1000;
    for (const t of this.trackers.values()) {
      const n = t.received - t.lastReceived;
      t.lastReceived = t.received;
      t.stride = this.timedPerSecond > 0 && n > budget ? Math.ceil(n / budget) : 1;
    }
  }

  /** The tracker of node `id` (created the first time), or null when it is not timed. */
  lookup(id: string, node: NodeLike | undefined): NodeTracker | null {
    const known = this.seen.get(id);
    if (known !== undefined) return known;
    const type = node?.type ?? '';
    const name = node?.name ?? '';
    let t: NodeTracker | null = null;
    if (this.exclude.has(id) || (this.filter && !this.filter.has(id) && !this.filter.has(type) && !(name && this.filter.has(name)))) t = null;
    else if (this.trackers.size >= this.maxNodes) {
      this.skipped++;
      return null; // not remembered: counted each time
    } else {
      t = new NodeTracker({ id, type, name });
      this.trackers.set(id, t);
    }
    if (this.seen.size >= 100_000) this.seen.clear();
    this.seen.set(id, t);
    return t;
  }

  /**
   * Node `id` is about to receive message `msgid`. `clock()` (ms) is only read
   * when the message is timed.
   */
  receive(id: string, node: NodeLike | undefined, msgid: string | undefined, clock: () => number): void {
    const t = this.lookup(id, node);
    if (t === null) return;
    t.received++;
    if (msgid === undefined || (t.stride > 1 && !this.pick(t.stride))) return;
    const nowMs = clock();
    if (t.slotId === undefined) {
      t.slotId = msgid;
      t.slotT = nowMs;
      return;
    }
    const p = t.pending;
    const prev = p.get(msgid);
    if (prev === undefined) {
      if (p.size >= this.maxPending) {
        // Map iteration is insertion order: the first key is the oldest stamp.
        const oldest = p.keys().next().value as string;
        p.delete(oldest);
        t.evicted++;
        this.evicted++;
      }
      p.set(msgid, nowMs);
    } else if (typeof prev === 'number') {
      p.set(msgid, [prev, nowMs]);
    } else if (prev.length < 64) {
      prev.push(nowMs);
    } else {
      t.evicted++;
      this.evicted++;
    }
  }

  /** True with probability 1/stride (xorshift32). */
  pick(stride: number): boolean {
    let x = this.rng;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rng = x;
    return (x >>> 0) % stride === 0;
  }

  /** Node `id` completed message `msgid` (it called done()); `clock()` is only read when it was timed. */
  complete(id: string, msgid: string | undefined, clock: () => number): void {
    const t = this.trackers.get(id);
    if (t === undefined || msgid === undefined) return;
    if (t.slotId === msgid) {
      t.slotId = undefined;
      t.completed++;
      t.hist.observeUs((clock() - t.slotT) * 1000);
      return;
    }
    const p = t.pending;
    if (p.size === 0) {
      this.untimed++;
      return;
    }
    const stamp = p.get(msgid);
    if (stamp === undefined) {
      this.untimed++;
      return;
    }
    const nowMs = clock();
    let t0: number;
    if (typeof stamp === 'number') {
      t0 = stamp;
      p.delete(msgid);
    } else {
      t0 = stamp.shift()!;
      if (stamp.length === 0) p.delete(msgid);
      else if (stamp.length === 1) p.set(msgid, stamp[0]);
    }
    t.completed++;
    t.hist.observeUs((nowMs - t0) * 1000);
  }

  /** Forget pending stamps (the hooks were removed: their completions will never be seen). */
  clearPending(): void {
    for (const t of this.trackers.values()) {
      t.pending.clear();
      t.slotId = undefined;
    }
  }

  /** Pending stamps held, over all nodes (bounded by maxNodes * maxPending). */
  pendingCount(): number {
    let n = 0;
    for (const t of this.trackers.values()) n += t.pending.size + (t.slotId === undefined ? 0 : 1);
    return n;
  }

  reset(): void {
    this.trackers.clear();
    this.seen.clear();
    this.skipped = 0;
    this.evicted = 0;
    this.untimed = 0;
  }
}
