// One prom-client registry per Node-RED runtime, and GET /metrics on the
// runtime's HTTP node server (under httpNodeRoot; under httpAdminRoot when the
// node server is off or settings.rtEdgeMetricsAdmin is true) serving it in the
// Prometheus text format. Every rt-* node registers its metrics here. Metrics that live
// in a worker's SharedArrayBuffer are exported through "families": a node
// attaches a reader for its label set, the family reads every attached reader
// at scrape time, and the node detaches on close (no stale series).
import * as prom from 'prom-client';

import type { NodeAPI } from './red-types';
import type { SharedHistogram } from './shared-metrics';

type Labels = Record<string, string>;

const NAME_RE = /^rtedge_[a-z0-9_]+$/;

export function checkMetricName(name: string, type: 'counter' | 'gauge' | 'histogram'): void {
  if (!NAME_RE.test(name)) throw new Error(`metric name ${name} must match rtedge_<thing>_<unit>`);
  if (/_ms(_|$)/.test(name)) throw new Error(`metric ${name}: use seconds, not milliseconds`);
  if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
  if (type !== 'counter' && name.endsWith('_total')) throw new Error(`${type} ${name} must not end in _total`);
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

interface CollectorValue {
  value: number;
  labels: Labels;
  metricName?: string;
}

/** A counter or gauge family whose values are read at scrape time. */
export class ReaderFamily {
  readonly readers = new Map<string, { labels: Labels; read: () => number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {
    checkMetricName(name, type);
  }
  attach(labels: Labels, read: () => number): void {
    this.readers.set(labelKey(labels), { labels, read });
  }
  detach(labels: Labels): void {
    this.readers.delete(labelKey(labels));
  }
  get(): { name: string; help: string; type: string; values: CollectorValue[]; aggregator: string } {
    const values: CollectorValue[] = [];
    for (const r of this.readers.values()) values.push({ value: r.read(), labels: r.labels });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }
}

/** A histogram family over SharedHistograms written by workers. Exported in seconds. */
export class SharedHistogramFamily {
  readonly members = new Map<string, { labels: Labels; hist: SharedHistogram }>();
  readonly type = 'histogram';
  constructor(
    readonly name: string,
    readonly help: string,
  ) {
    checkMetricName(name, 'histogram');
  }
  attach(labels: Labels, hist: SharedHistogram): void {
    this.members.set(labelKey(labels), { labels, hist });
  }
  detach(labels: Labels): void {
    this.members.delete(labelKey(labels));
  }
  get(): { name: string; help: string; type: string; values: CollectorValue[]; aggregator: string } {
    const values: CollectorValue[] = [];
    for (const { labels, hist } of this.members.values()) {
      const s = hist.snapshot();
      let acc = 0;
      s.bucketBounds.forEach((le, i) => {
        acc += s.buckets[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(le) }, value: acc });
      });
      acc += s.buckets[s.buckets.length - 1];
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
      values.push({ metricName: `${this.name}_sum`, labels, value: s.sumSeconds });
      values.push({ metricName: `${this.name}_count`, labels, value: s.count });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }
}

export interface RuntimeMetrics {
  registry: prom.Registry;
  counter(name: string, help: string, labelNames?: string[]): prom.Counter<string>;
  gauge(name: string, help: string, labelNames?: string[]): prom.Gauge<string>;
  histogram(name: string, help: string, labelNames?: string[], buckets?: number[]): prom.Histogram<string>;
  readerFamily(name: string, help: string, type: 'counter' | 'gauge'): ReaderFamily;
  sharedHistogramFamily(name: string, help: string): SharedHistogramFamily;
  /** The URL path /metrics is served at (under httpNodeRoot). */
  path: string;
}

const byRuntime = new WeakMap<object, RuntimeMetrics>();

export const METRICS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function makeRuntimeMetrics(RED: NodeAPI | null): RuntimeMetrics {
  const registry = new prom.Registry();
  const configured = RED?.settings?.rtEdgeMetricsPath;
  const path = typeof configured === 'string' && configured.startsWith('/') ? configured : '/metrics';
  prom.collectDefaultMetrics({ register: registry });
  const get = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
  const rm: RuntimeMetrics = {
    registry,
    path,
    counter(name, help, labelNames = []) {
      checkMetricName(name, 'counter');
      return get<prom.Counter<string>>(name) ?? new prom.Counter({ name, help, labelNames, registers: [registry] });
    },
    gauge(name, help, labelNames = []) {
      checkMetricName(name, 'gauge');
      return get<prom.Gauge<string>>(name) ?? new prom.Gauge({ name, help, labelNames, registers: [registry] });
    },
    histogram(name, help, labelNames = [], buckets = METRICS_BUCKETS) {
      checkMetricName(name, 'histogram');
      return (
        get<prom.Histogram<string>>(name) ??
        new prom.Histogram({ name, help, labelNames, buckets, registers: [registry] })
      );
    },
    readerFamily(name, help, type) {
      const existing = get<ReaderFamily>(name);
      if (existing) return existing;
      const f = new ReaderFamily(name, help, type);
      registry.registerMetric(f as unknown as prom.Metric);
      return f;
    },
    sharedHistogramFamily(name, help) {
      const existing = get<SharedHistogramFamily>(name);
      if (existing) return existing;
      const f = new SharedHistogramFamily(name, help);
      registry.registerMetric(f as unknown as prom.Metric);
      return f;
    },
  };
  const serve = (_req: unknown, res: { set(k: string, v: string): unknown; status(c: number): { send(b: string): unknown } }): void => {
    registry.metrics().then(
      (text) => {
        res.set('Content-Type', registry.contentType);
        res.status(200).send(text);
      },
      (err: Error) => {
        res.status(500).send(String(err?.message ?? err));
      },
    );
  };
  // Under httpNodeRoot, like an http-in endpoint (httpNodeAuth applies). When
  // the node server is off (httpNodeRoot: false), or the user asks for it
  // (rtEdgeMetricsAdmin: true), also under httpAdminRoot, where adminAuth
  // applies: a scraper then needs a token with the rt-metrics.read permission.
  const nodeServerOff = RED?.settings?.httpNodeRoot === false;
  if (RED?.httpNode && !nodeServerOff) RED.httpNode.get(rm.path, serve as never);
  if (RED?.httpAdmin && (nodeServerOff || RED.settings?.rtEdgeMetricsAdmin === true)) {
    const allowed = RED.auth ? RED.auth.needsPermission('rt-metrics.read') : (_q: unknown, _s: unknown, next: () => void) => next();
    RED.httpAdmin.get(rm.path, allowed as never, serve as never);
  }
  return rm;
}

/**
 * The metrics of one Node-RED runtime. The first call for a runtime creates the
 * registry (with prom-client's default Node.js process metrics) and mounts
 * GET /metrics (or settings.rtEdgeMetricsPath) on RED.httpNode.
 */
export function runtimeMetrics(RED: NodeAPI): RuntimeMetrics {
  const key: object = (RED.httpNode as object | undefined) ?? RED;
  let rm = byRuntime.get(key);
  if (!rm) {
    rm = makeRuntimeMetrics(RED);
    byRuntime.set(key, rm);
  }
  return rm;
}
