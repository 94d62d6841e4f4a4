// The perf monitor's logic: once per interval it takes the interval's
// measurements (event-loop delay and utilisation, memory, the worker-side
// histograms, the per-node latencies recorded by the hooks), evaluates the
// rules and builds the snapshot; on request it builds the health report.
// Pure: the adapter provides the measurements and sends the results.
import { emptySample, type FineSample, mergeInto, summarize, type Summary } from './hist-core';
import type { HookBook, NodeTracker } from './hooks-core';
import type { Coded } from '../shared/coded';
import { type AlertPayload, type IntervalValue, type Rule, type RuleStatus, RulesEngine } from './rules-core';

export interface MemoryInfo {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

export interface IntervalInput {
  /** event-loop delay over the interval (us) */
  eventLoop: FineSample;
  /** event-loop utilisation over the interval, 0..1 */
  utilization: number;
  memory: MemoryInfo;
  /** worker-side (and other registry) histograms over the interval, by metric name */
  workers: Map<string, FineSample>;
  /** cumulative observation counts of those histograms */
  workerTotals?: Map<string, number>;
}

export interface SamplingInfo {
  mode: string;
  windowMs: number;
  periodMs: number;
  hooksActive: boolean;
  windows: number;
}

export interface NodeStats extends Summary {
  id: string;
  type: string;
  name: string;
  received: number;
  completed: number;
  /** over the last interval */
  recent: { count: number; p50: number; p99: number; max: number };
}

export interface Snapshot {
  ts: number;
  intervalMs: number;
  sampling: SamplingInfo;
  eventLoop: { delay: Summary; utilization: number };
  memory: { rssMB: number; heapUsedMB: number; heapTotalMB: number; externalMB: number };
  nodes: NodeStats[];
  nodesTracked: number;
  stamps: { pending: number; evicted: number; skippedNodes: number };
  workers: Record<string, Summary & { total: number }>;
  rules: RuleStatus[];
  firing: number;
}

/** The health report; alert messages coded in the core (M = Coded), worded by the adapter (M = string). */
export interface HealthReport<M = Coded> {
  ts: number;
  healthy: boolean;
  violations: Array<AlertPayload<M>>;
  topSlowNodes: NodeStats[];
  eventLoop: Snapshot['eventLoop'];
  memory: Snapshot['memory'];
}

const MB = 1024 * 1024;
const r1 = (v: number): number => Math.round(v * 10) / 10;
const r3 = (v: number): number => Math.round(v * 1000) / 1000;

export interface MonitorOptions {
  rules: readonly Rule[];
  book: HookBook;
  intervalMs: number;
  /** nodes listed in a snapshot (slowest first) */
  topN?: number;
  now?: () => number;
}

/** A node matches a rule's `node` selector by id, name or type. */
export function matchesNode(t: NodeTracker, sel: string): boolean {
  return t.info.id === sel || t.info.name === sel || t.info.type === sel;
}

export class PerfMonitor {
  readonly engine: RulesEngine;
  private readonly now: () => number;
  private readonly topN: number;
  private lastNodes = new Map<string, FineSample>();
  private last: IntervalInput | null = null;
  /** the lowest RSS seen since start (bytes): the baseline of memory.rssGrowth */
  private rssLow = Infinity;
  ticks = 0;

  constructor(private readonly o: MonitorOptions) {
    this.engine = new RulesEngine(o.rules);
    this.now = o.now ?? Date.now;
    this.topN = o.topN ?? 10;
  }

  /** One interval has passed. Returns the alerts to send. */
  tick(input: IntervalInput): AlertPayload[] {
    this.ticks++;
    this.last = input;
    this.rssLow = Math.min(this.rssLow, input.memory.rss);
    const nodes = new Map<string, FineSample>();
    for (const [id, t] of this.o.book.trackers) nodes.set(id, t.hist.takePeriod());
    this.lastNodes = nodes;
    return this.engine.evaluate((rule) => this.read(rule, input, nodes), this.now());
  }

  private read(rule: Rule, input: IntervalInput, nodes: Map<string, FineSample>): IntervalValue {
    const dist = (s: FineSample | undefined): IntervalValue => (s && s.count > 0 ? { dist: s } : null);
    switch (rule.metric) {
      case 'eventloop.delay':
        return dist(input.eventLoop);
      case 'eventloop.utilization':
        return { gauge: input.utilization };
      case 'memory.rss':
        return { gauge: input.memory.rss / MB };
      case 'memory.rssGrowth':
        return { gauge: (input.memory.rss - this.rssLow) / MB };
      case 'memory.heapUsed':
        return { gauge: input.memory.heapUsed / MB };
      case 'memory.heapTotal':
        return { gauge: input.memory.heapTotal / MB };
      case 'memory.external':
        return { gauge: input.memory.external / MB };
      case 'node.latency': {
        const acc = emptySample();
        for (const [id, t] of this.o.book.trackers) {
          const s = nodes.get(id);
          if (s && matchesNode(t, rule.node!)) mergeInto(acc, s);
        }
        return dist(acc);
      }
      default:
        return dist(input.workers.get(rule.metric));
    }
  }

  nodeStats(): NodeStats[] {
    const out: NodeStats[] = [];
    for (const [id, t] of this.o.book.trackers) {
      const s = summarize(t.hist.total());
      const rec = this.lastNodes.get(id);
      const rs = rec ? summarize(rec) : null;
      out.push({
        id,
        type: t.info.type,
        name: t.info.name,
        received: t.received,
        completed: t.completed,
        ...s,
        recent: rs ? { count: rs.count, p50: rs.p50, p99: rs.p99, max: rs.max } : { count: 0, p50: 0, p99: 0, max: 0 },
      });
    }
    return out.sort((a, b) => b.p99 - a.p99 || b.max - a.max);
  }

  private eventLoop(): Snapshot['eventLoop'] {
    return { delay: summarize(this.last?.eventLoop ?? emptySample()), utilization: r3(this.last?.utilization ?? 0) };
  }

  private memory(): Snapshot['memory'] {
    const m = this.last?.memory ?? { rss: 0, heapUsed: 0, heapTotal: 0, external: 0 };
    return { rssMB: r1(m.rss / MB), heapUsedMB: r1(m.heapUsed / MB), heapTotalMB: r1(m.heapTotal / MB), externalMB: r1(m.external / MB) };
  }

  snapshot(sampling: SamplingInfo): Snapshot {
    const book = this.o.book;
    const workers: Snapshot['workers'] = {};
    if (this.last) {
      for (const [name, s] of this.last.workers) workers[name] = { ...summarize(s), total: this.last.workerTotals?.get(name) ?? s.count };
    }
    return {
      ts: this.now(),
      intervalMs: this.o.intervalMs,
      sampling,
      eventLoop: this.eventLoop(),
      memory: this.memory(),
      nodes: this.nodeStats().slice(0, this.topN),
      nodesTracked: book.trackers.size,
      stamps: { pending: book.pendingCount(), evicted: book.evicted, skippedNodes: book.skipped },
      workers,
      rules: this.engine.status(),
      firing: this.engine.firingCount(),
    };
  }

  health(top = 5): HealthReport {
    const violations = this.engine.violations();
    return {
      ts: this.now(),
      healthy: violations.length === 0,
      violations,
      topSlowNodes: this.nodeStats().filter((n) => n.count > 0).slice(0, top),
      eventLoop: this.eventLoop(),
      memory: this.memory(),
    };
  }
}
