// The worker side of the hand-off, without I/O: a received payload is parsed
// with its source's parser, its frame/seq numbers checked for gaps, and each
// event either posted (a credit was free) or dropped and counted per source.
// Events are batched and posted on the next turn of the worker's loop (or at
// once when a batch is full). Pure: the clock, the scheduler and the post
// function are handed in. No Node-RED, no threads.
import type { SharedMetrics } from '../shared/shared-metrics';
import { CreditGate, GapTracker, numberField, parse, truncateRaw } from './ingress-core';
import type { IngressEvent, SourceSpec, WireEvent } from './ingress-protocol';

export interface PipeDeps {
  post(ev: IngressEvent): void;
  /** Runs fn soon, after the current I/O callback (the worker: a microtask, after the socket read being parsed). */
  defer(fn: () => void): void;
  /** Epoch ms, fractional. */
  now(): number;
}

export const MAX_BATCH = 512;

export class IngressPipe {
  private batch: WireEvent[] = [];
  private scheduled = false;
  private seq = 0;
  private readonly gaps: GapTracker[];
  private readonly names: string[];
  private readonly counters: { received: string; parsed: string; dropped: string; malformed: string; gaps: string; duplicates: string }[];

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
    }));
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
      if (!this.gates[s].tryTake()) {
        this.m.inc(c.dropped);
        continue;
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
