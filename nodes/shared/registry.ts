// One prom-client registry per Node-RED runtime, and GET /metrics on the
// runtime's HTTP node server (under httpNodeRoot; under httpAdminRoot when the
// node server is off or settings.rtEdgeMetricsAdmin is true) serving it in the
// Prometheus text format. settings.rtEdgeMetricsPath moves it or (false) turns
// it off; another module that serves the same path keeps it (see
// metrics-endpoint.ts). Every rt-* node registers its metrics here. Metrics that live
// in a worker's SharedArrayBuffer are exported through "families": a node
// attaches a reader for its label set, the family reads every attached reader
// at scrape time, and the node detaches on close (no stale series).
import * as prom from 'prom-client';

import { needs } from './admin';
import { metricsEndpoint, otherGetRoute } from './metrics-endpoint';
import type { HttpApp, NodeAPI } from './red-types';
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

export interface SharedHistogramOptions {
  /**
   * Multiplies bucket bounds and sum on export (default 1: seconds). A
   * histogram of counts (messages per batch) observes counts as
   * "microseconds" and is exported with scale 1e6.
   */
  scale?: number;
}

/** A histogram family over SharedHistograms written by workers. Exported in seconds (times `scale`). */
export class SharedHistogramFamily {
  readonly members = new Map<string, { labels: Labels; hist: SharedHistogram }>();
  readonly type = 'histogram';
  readonly scale: number;
  constructor(
    readonly name: string,
    readonly help: string,
    opts: SharedHistogramOptions = {},
  ) {
    checkMetricName(name, 'histogram');
    this.scale = opts.scale ?? 1;
  }
  private scaled(v: number): number {
    return this.scale === 1 ? v : Number((v * this.scale).toPrecision(12));
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
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(this.scaled(le)) }, value: acc });
      });
      acc += s.buckets[s.buckets.length - 1];
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
      values.push({ metricName: `${this.name}_sum`, labels, value: this.scaled(s.sumSeconds) });
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
  sharedHistogramFamily(name: string, help: string, opts?: SharedHistogramOptions): SharedHistogramFamily;
  /** The URL path the metrics are served at (under httpNodeRoot), or false: not served (rtEdgeMetricsPath: false). */
  path: string | false;
}

const byRuntime = new WeakMap<object, RuntimeMetrics>();

export const METRICS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * prom-client's default metrics include three gauges named like counters
 * (nodejs_active_handles_total, nodejs_active_requests_total,
 * nodejs_active_resources_total), which `promtool check metrics` flags
 * ("non-counter metrics should not have _total suffix"). Their suffix-less
 * names are already taken by the same counts per type (nodejs_active_handles
 * {type}...), whose sum is the total, so they are dropped.
 */
export const DROPPED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

function makeRuntimeMetrics(RED: NodeAPI | null): RuntimeMetrics {
  const registry = new prom.Registry();
  const endpoint = metricsEndpoint(RED?.settings);
  const log = RED?.log;
  for (const w of endpoint.warnings) log?.warn(`[rtedge] ${w}`);
  const path = endpoint.path;
  prom.collectDefaultMetrics({ register: registry });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
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
    sharedHistogramFamily(name, help, opts) {
      const existing = get<SharedHistogramFamily>(name);
      if (existing) return existing;
      const f = new SharedHistogramFamily(name, help, opts);
      registry.registerMetric(f as unknown as prom.Metric);
      return f;
    },
  };
  if (path !== false) {
    if (endpoint.onNode) mount(RED?.httpNode, 'httpNodeRoot', RED?.settings?.httpNodeRoot, path, registry, log);
    if (endpoint.onAdmin) {
      // Under httpAdminRoot adminAuth applies: a scraper needs a token with the rt-metrics.read permission.
      mount(RED?.httpAdmin, 'httpAdminRoot', RED?.settings?.httpAdminRoot, path, registry, log, needs(RED ?? {}, 'rt-metrics.read') as Handler);
    }
  } else {
    const adminToo = RED?.settings?.rtEdgeMetricsAdmin === true ? '; rtEdgeMetricsAdmin has no effect' : '';
    log?.info(`[rtedge] metrics endpoint off (rtEdgeMetricsPath: false${adminToo})`);
  }
  return rm;
}

type Handler = (...a: never[]) => unknown;
interface Res {
  set(k: string, v: string): unknown;
  status(c: number): { send(b: string): unknown };
}

const joinRoot = (root: unknown, path: string): string => (typeof root === 'string' ? root.replace(/\/+$/, '') : '') + path;

/**
 * GET `path` on one of the runtime's express apps, unless another module
 * already serves it there; and, at request time, passes the request on when
 * another module mounted the same path after us, so theirs answers.
 */
function mount(
  app: HttpApp | undefined,
  rootName: 'httpNodeRoot' | 'httpAdminRoot',
  root: unknown,
  path: string,
  registry: prom.Registry,
  log: NodeAPI['log'] | undefined,
  guard?: Handler,
): void {
  if (!app) return;
  const url = joinRoot(root, path);
  const clash = (when: string): string =>
    `[rtedge] GET ${url} (${rootName}) ${when} another module (e.g. node-red-contrib-prometheus-exporter, or an http in node): ` +
    `that one answers, the rtedge metrics are not served there. To serve them too, move them with rtEdgeMetricsPath in settings.js ` +
    `(e.g. rtEdgeMetricsPath: '/rtedge/metrics'); rtEdgeMetricsPath: false turns them off.`;
  let deferring = false;
  const serve = (_req: unknown, res: Res, next?: () => void): void => {
    if (next && otherGetRoute(app, path, ours, true)) {
      if (!deferring) log?.warn(clash('is also served by'));
      deferring = true;
      next();
      return;
    }
    if (deferring) log?.info(`[rtedge] GET ${url} (${rootName}) serves the rtedge metrics again (the other handler is gone)`);
    deferring = false;
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
  const ours = new Set<Handler>([serve as Handler]);
  if (otherGetRoute(app, path, ours)) {
    log?.warn(clash('is already served by'));
    return;
  }
  if (guard) app.get(path, guard as never, serve as never);
  else app.get(path, serve as never);
  log?.info(`[rtedge] metrics at GET ${url} (${rootName})`);
}

/**
 * The metrics of one Node-RED runtime. The first call for a runtime creates the
 * registry (with prom-client's default Node.js process metrics) and mounts
 * GET /metrics (or settings.rtEdgeMetricsPath; none when it is false) on RED.httpNode.
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
