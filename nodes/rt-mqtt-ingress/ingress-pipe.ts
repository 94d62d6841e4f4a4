// The worker side of the hand-off, without I/O: a received payload is parsed
// with its source's parser, its frame/seq numbers checked for gaps, and each
// event either posted (a credit was free) or dropped and counted per source.
// Events are batched and posted on the next turn of the worker's loop (or at
// once when a batch is full). A frame source with a Frame rate hands over at
// most one frame per sensor per slot: the frames in between are merged into
// the next one (latest position per object), counted as merged. Pure: the
// clock, the schedulers and the post function are handed in. No Node-RED, no
// threads.
import type { SharedMetrics } from '../shared/shared-metrics';
import { CreditGate, FrameMerge, GapTracker, numberField, parse, truncateRaw } from './ingress-core';
import type { IngressEvent, SourceSpec, WireEvent } from './ingress-protocol';

export interface PipeDeps {
  post(ev: IngressEvent): void;
  /** Runs fn soon, after the current I/O callback (the worker: a microtask, after the socket read being parsed). */
  defer(fn: () => void): void;
  /** Epoch ms, fractional. */
  now(): number;
  /** Runs fn in ms (a Frame rate's next slot); the handle cancels it. */
  later(fn: () => void, ms: number): { cancel(): void };
}

export const MAX_BATCH = 512;
/** Sensors per frame source with a Frame rate, at most (past it, the least recently seen is handed over and forgotten). */
export const MAX_SENSORS = 1024;

/** One sensor's slot state on a frame source with a Frame rate. */
interface Slot {
  /** when its last frame was handed over (worker clock, ms) */
  at: number;
  merge: FrameMerge;
  timer: { cancel(): void } | null;
  topic: string;
  q: number;
  rx: number;
}

export class IngressPipe {
  private batch: WireEvent[] = [];
  private scheduled = false;
  private seq = 0;
  private readonly gaps: GapTracker[];
  private readonly names: string[];
  private readonly counters: { received: string; parsed: string; dropped: string; malformed: string; gaps: string; duplicates: string; merged: string }[];
  /** Per source: its sensors' slots (frame sources with a Frame rate), else null. */
  private readonly slots: Array<Map<string, Slot> | null>;

  constructor(
    private readonly sources: SourceSpec[],
    private readonly gates: CreditGate[],
    private readonly m: SharedMetrics,
    private readonly maxBytes: number,
    private readonly deps: PipeDeps,
  ) {
    this.gaps = sources.map(() => new GapTracker());
    this.names = sources.map((s) => s.name);
    this.counters = sources.map((_, i) => ({
      received: `received.${i}`,
      parsed: `parsed.${i}`,
      dropped: `dropped.${i}`,
      malformed: `malformed.${i}`,
      gaps: `gaps.${i}`,
      duplicates: `duplicates.${i}`,
      merged: `merged.${i}`,
    }));
    this.slots = sources.map((x) => (x.parser === 'tracks' && (x.frameGapMs ?? 0) > 0 ? new Map() : null));
  }

  /** One MQTT payload or TCP line from source s. */
  receive(s: number, topic: string, text: string): void {
    const rx = this.deps.now();
    const c = this.counters[s];
    const src = this.sources[s];
    this.m.inc(c.received);
    const r = parse(src.parser, text, this.maxBytes);
    if (r.bad > 0) {
      this.m.inc(c.malformed, r.bad);
      // Reported to the flow (Catch) only while a credit is free: a flood of bad input stays bounded too.
      if (r.error && this.gates[s].tryTake()) {
        this.flush();
        this.deps.post({ t: 'malformed', s, topic, raw: truncateRaw(text), error: r.error });
      }
    }
    const nf = numberField(src.parser);
    for (const p of r.events) {
      this.m.inc(c.parsed);
      if (nf) {
        const before = this.gaps[s].duplicates;
        const missing = this.gaps[s].observe(p.sensor as string, p[nf] as number);
        if (missing > 0) this.m.inc(c.gaps, missing);
        if (this.gaps[s].duplicates !== before) this.m.inc(c.duplicates);
      }
      const q = ++this.seq;
      const slots = this.slots[s];
      if (slots !== null) this.frame(s, slots, topic, p, q, rx);
      else this.handOver(s, topic, p, q, rx);
    }
  }

  /** Takes a credit and batches the event, or drops and counts it. */
  private handOver(s: number, topic: string, p: Record<string, unknown>, q: number, rx: number): void {
    if (!this.gates[s].tryTake()) {
      this.m.inc(this.counters[s].dropped);
      return;
    }
    this.batch.push({ s, topic, p, q, rx });
    if (this.batch.length >= MAX_BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      this.deps.defer(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  /** A frame on a source with a Frame rate: handed over if its sensor's slot is free, else merged into the next. */
  private frame(s: number, slots: Map<string, Slot>, topic: string, p: Record<string, unknown>, q: number, rx: number): void {
    const gap = this.sources[s].frameGapMs ?? 0;
    const sensor = p.sensor as string;
    let slot = slots.get(sensor);
    if (slot === undefined) {
      if (slots.size >= MAX_SENSORS) {
        const [oldKey, old] = slots.entries().next().value as [string, Slot];
        this.release(s, old);
        slots.delete(oldKey);
      }
      slot = { at: -Infinity, merge: new FrameMerge(), timer: null, topic, q, rx };
      slots.set(sensor, slot);
    } else {
      // least recently seen first (the one forgotten past MAX_SENSORS)
      slots.delete(sensor);
      slots.set(sensor, slot);
    }
    if (slot.timer === null && rx - slot.at >= gap) {
      slot.at = rx;
      this.handOver(s, topic, p, q, rx);
      return;
    }
    slot.merge.add(p);
    slot.topic = topic;
    slot.q = q;
    slot.rx = rx;
    if (slot.timer === null) {
      const sl = slot;
      sl.timer = this.deps.later(() => {
        sl.timer = null;
        sl.at = this.deps.now();
        this.release(s, sl);
      }, Math.max(0, sl.at + gap - rx));
    }
  }

  /** Hands over what a slot has merged (one frame standing for `merged` frames). */
  private release(s: number, slot: Slot): void {
    slot.timer?.cancel();
    slot.timer = null;
    const n = slot.merge.frames;
    const f = slot.merge.take();
    if (f === null) return;
    if (n > 1) this.m.inc(this.counters[s].merged, n - 1);
    this.handOver(s, slot.topic, f, slot.q, slot.rx);
  }

  /** Hands over every merged frame still waiting for its slot (closing), then the batch. */
  close(): void {
    this.slots.forEach((slots, s) => {
      if (slots) for (const slot of slots.values()) this.release(s, slot);
    });
    this.flush();
  }

  flush(): void {
    if (this.batch.length === 0) return;
    const ev = this.batch;
    this.batch = [];
    this.deps.post({ t: 'batch', ev });
  }

  sourceName(s: number): string {
    return this.names[s];
  }
}
