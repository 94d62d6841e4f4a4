// A histogram of counts (messages per batch) exported from a SharedHistogram
// whose "microseconds" are counts: bucket bounds and sum scaled back by 1e6.
import type { SharedHistogram } from '../shared/shared-metrics';
import { checkMetricName, type RuntimeMetrics } from '../shared/registry';

type Labels = Record<string, string>;

export class CountHistogramFamily {
  readonly members = new Map<string, { labels: Labels; hist: SharedHistogram }>();
  readonly type = 'histogram';
  constructor(
    readonly name: string,
    readonly help: string,
  ) {
    checkMetricName(name, 'histogram');
  }
  attach(labels: Labels, hist: SharedHistogram): void {
    this.members.set(JSON.stringify(labels), { labels, hist });
  }
  detach(labels: Labels): void {
    this.members.delete(JSON.stringify(labels));
  }
  get(): { name: string; help: string; type: string; values: Array<{ value: number; labels: Labels; metricName: string }>; aggregator: string } {
    const values: Array<{ value: number; labels: Labels; metricName: string }> = [];
    for (const { labels, hist } of this.members.values()) {
      const s = hist.snapshot();
      let acc = 0;
      s.bucketBounds.forEach((le, i) => {
        acc += s.buckets[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(Math.round(le * 1e6)) }, value: acc });
      });
      acc += s.buckets[s.buckets.length - 1];
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
      values.push({ metricName: `${this.name}_sum`, labels, value: Math.round(s.sumSeconds * 1e6) });
      values.push({ metricName: `${this.name}_count`, labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }
}

/** The family of this runtime's registry (created on first use). */
export function countHistogramFamily(metrics: RuntimeMetrics, name: string, help: string): CountHistogramFamily {
  const existing = metrics.registry.getSingleMetric(name) as unknown as CountHistogramFamily | undefined;
  if (existing) return existing;
  const f = new CountHistogramFamily(name, help);
  metrics.registry.registerMetric(f as never);
  return f;
}
