// Process probes for the perf monitor (no Node-RED): event-loop delay from
// perf_hooks.monitorEventLoopDelay, event-loop utilisation, memory, and the
// histograms other nodes publish in the runtime's prom-client registry.
import { type EventLoopUtilization, type IntervalHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks';

import { DeltaTracker, emptySample, type FineSample, LocalHistogram, sampleFromPromBuckets } from './hist-core';
import type { MemoryInfo } from './monitor-core';

/**
 * Event-loop delay: a timer every `resolutionMs` and how late it fires. Node
 * reports the full timer period, so the resolution is subtracted to give the
 * delay itself. Each take() converts the native HDR histogram's percentile
 * ladder into a fine sample (the interval's distribution) and resets it.
 */
export class EventLoopProbe {
  private readonly h: IntervalHistogram;
  private elu: EventLoopUtilization;
  constructor(private readonly resolutionMs = 10) {
    this.h = monitorEventLoopDelay({ resolution: resolutionMs });
    this.h.enable();
    this.elu = performance.eventLoopUtilization();
  }

  take(): { delay: FineSample; utilization: number } {
    const h = this.h;
    const lh = new LocalHistogram();
    const count = h.count;
    if (count > 0) {
      const res = this.resolutionMs * 1000;
      let prevP = 0;
      const entries = [...h.percentiles.entries()].sort((a, b) => a[0] - b[0]);
      for (const [p, ns] of entries) {
        const w = ((p - prevP) / 100) * count;
        prevP = p;
        if (w > 0) lh.addWeighted(Math.max(0, ns / 1000 - res), w);
      }
      if (prevP < 100) lh.addWeighted(Math.max(0, h.max / 1000 - res), ((100 - prevP) / 100) * count);
    }
    const delay = lh.total();
    delay.maxUs = count > 0 ? Math.max(0, h.max / 1000 - this.resolutionMs * 1000) : 0;
    h.reset();
    const now = performance.eventLoopUtilization();
    const d = performance.eventLoopUtilization(now, this.elu);
    this.elu = now;
    return { delay, utilization: Number.isFinite(d.utilization) ? d.utilization : 0 };
  }

  stop(): void {
    this.h.disable();
  }
}

export function memory(): MemoryInfo {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external };
}

/** The parts of prom-client's registry and metric objects the reader uses. */
interface RegistryLike {
  getMetricsAsArray(): Array<{ name?: string; type?: string; get?: () => unknown; members?: unknown }>;
}
interface SharedMember {
  hist: { snapshot(): { fine: ArrayLike<number>; count: number; sumSeconds: number; maxUs: number } };
}
interface PromValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/**
 * Reads every rtedge_* histogram in the registry (except the monitor's own,
 * rtedge_perf_*) and returns each one's observations over the last interval,
 * all label sets merged. Worker-side SharedHistogram families give exact fine
 * counts; plain prom-client histograms give their Prometheus buckets.
 */
export class RegistryHistogramReader {
  private readonly deltas = new Map<string, DeltaTracker>();
  constructor(private readonly registry: RegistryLike) {}

  async take(): Promise<{ samples: Map<string, FineSample>; totals: Map<string, number> }> {
    const samples = new Map<string, FineSample>();
    const totals = new Map<string, number>();
    const seen = new Set<string>();
    for (const m of this.registry.getMetricsAsArray()) {
      const name = m.name;
      if (!name || !name.startsWith('rtedge_') || name.startsWith('rtedge_perf_') || m.type !== 'histogram') continue;
      let cum: FineSample | null = null;
      if (m.members instanceof Map) {
        cum = emptySample();
        for (const mem of (m.members as Map<string, SharedMember>).values()) {
          const s = mem.hist.snapshot();
          for (let i = 0; i < cum.fine.length && i < s.fine.length; i++) cum.fine[i] += s.fine[i];
          cum.count += s.count;
          cum.sumUs += s.sumSeconds * 1e6;
          if (s.maxUs > cum.maxUs) cum.maxUs = s.maxUs;
        }
      } else if (typeof m.get === 'function') {
        const got = (await m.get()) as { values?: PromValue[] };
        const byLe = new Map<number, number>();
        let sum = 0;
        for (const v of got.values ?? []) {
          if (v.metricName?.endsWith('_bucket')) {
            const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
            byLe.set(le, (byLe.get(le) ?? 0) + v.value);
          } else if (v.metricName?.endsWith('_sum')) sum += v.value;
        }
        const les = [...byLe.keys()].sort((a, b) => a - b);
        const bounds = les.filter((x) => Number.isFinite(x));
        cum = sampleFromPromBuckets(
          bounds,
          les.map((le) => byLe.get(le)!),
          sum,
        );
      }
      if (!cum) continue;
      seen.add(name);
      let d = this.deltas.get(name);
      if (!d) this.deltas.set(name, (d = new DeltaTracker()));
      samples.set(name, d.next(cum.fine, cum.count, cum.sumUs, cum.maxUs));
      totals.set(name, cum.count);
    }
    for (const k of [...this.deltas.keys()]) if (!seen.has(k)) this.deltas.delete(k);
    return { samples, totals };
  }
}
