// rt-perf-monitor: measures the runtime it runs in without instrumenting
// flows. Per-node processing latency comes from Node-RED's messaging hooks
// (onReceive stamps, onComplete times), added in sampling windows by default
// because hooks cost every message; event-loop delay and utilisation, memory
// and the worker-side histograms of the other rt-* nodes come from perf_hooks
// and the shared metrics registry. Once per interval: a snapshot on output 1,
// rule alerts/resolutions on output 2. A `health` request answers on output 3.
// Everything is also exported on /metrics as rtedge_perf_*.
import { performance } from 'node:perf_hooks';

import { coreText } from '../shared/i18n';
import type { Coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { bool, clampInt, migrate, oneOf } from '../shared/migrate';
import type { DoneFn, Node, NodeAPI, NodeDef, NodeMessage, SendFn } from '../shared/red-types';
import type { SharedHistogram } from '../shared/shared-metrics';
import { runtimeMetrics } from '../shared/registry';
import { ThrottledStatus } from '../shared/status';
import { finePercentileUs } from './hist-core';
import { HookBook, parseFilter } from './hooks-core';
import { PerfMonitor } from './monitor-core';
import { EventLoopProbe, memory, RegistryHistogramReader } from './probes';
import { type AlertPayload, DEFAULT_RULES, parseRules } from './rules-core';
import { type Mode, MODES, WindowScheduler } from './window-core';

const TYPE = 'rt-perf-monitor';

interface MonitorDef extends NodeDef {
  version?: number;
  mode?: string;
  window?: number | string;
  period?: number | string;
  interval?: number | string;
  filter?: string;
  defaultRules?: boolean | string;
  rules?: string;
  topN?: number | string;
  maxNodes?: number | string;
}

/** Config versions: 1 is the first release. */
const MIGRATIONS = [{ version: 1, up: (d: MonitorDef): MonitorDef => d }];

/** What Node-RED passes to the onReceive and onComplete hooks (the parts used). */
interface ReceiveEvent {
  msg?: NodeMessage;
  destination: { id: string; node?: { type?: string; name?: string } };
}
interface CompleteEvent {
  msg?: NodeMessage;
  node: { id: string };
}

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  /** An alert as flows see it: the message worded. */
  const worded = (a: AlertPayload): AlertPayload<string> => ({ ...a, message: t.text(a.message) });
  const metrics = runtimeMetrics(RED);
  const fam = {
    nodeLatency: metrics.sharedHistogramFamily('rtedge_perf_node_latency_seconds', 'Node processing time, onReceive to done() (messaging hooks; sampled unless continuous)'),
    nodeMessages: metrics.readerFamily('rtedge_perf_node_messages_total', 'Messages received by a timed node while the hooks were on', 'counter'),
    nodeP99: metrics.readerFamily('rtedge_perf_node_latency_p99_seconds', 'Node processing time p99 since start (within 6.25 %)', 'gauge'),
    elP50: metrics.readerFamily('rtedge_perf_eventloop_delay_p50_seconds', 'Event-loop delay p50 over the last interval', 'gauge'),
    elP99: metrics.readerFamily('rtedge_perf_eventloop_delay_p99_seconds', 'Event-loop delay p99 over the last interval', 'gauge'),
    elMax: metrics.readerFamily('rtedge_perf_eventloop_delay_max_seconds', 'Event-loop delay max over the last interval', 'gauge'),
    elu: metrics.readerFamily('rtedge_perf_eventloop_utilization_ratio', 'Event-loop utilisation over the last interval (0..1)', 'gauge'),
    rss: metrics.readerFamily('rtedge_perf_memory_rss_bytes', 'Resident set size at the last interval', 'gauge'),
    heap: metrics.readerFamily('rtedge_perf_memory_heap_used_bytes', 'V8 heap used at the last interval', 'gauge'),
    firing: metrics.readerFamily('rtedge_perf_alerts_firing', 'Rules currently violated', 'gauge'),
    alerts: metrics.readerFamily('rtedge_perf_alerts_total', 'Alerts raised (rules that started firing)', 'counter'),
    hooks: metrics.readerFamily('rtedge_perf_hooks_active', '1 while the messaging hooks are on', 'gauge'),
    evicted: metrics.readerFamily('rtedge_perf_stamps_evicted_total', 'Receive stamps dropped because a node held too many messages', 'counter'),
  };

  function PerfMonitorNode(this: Node, raw: MonitorDef): void {
    RED.nodes.createNode(this, raw);
    const node = this;
    const def = migrate(raw, MIGRATIONS);
    const status = new ThrottledStatus(node);
    const mode: Mode = oneOf(def.mode, MODES, 'sampling');
    const limitProblems: Coded[] = [];
    const lim = (field: 'interval' | 'period' | 'topN' | 'maxNodes', dflt: number): number => Math.round(readLimited(TYPE, field, def[field], dflt, limitProblems));
    const intervalS = lim('interval', 10);
    const periodS = lim('period', 10);
    const windowMs = Math.round(Math.min(periodS, Math.max(0.05, Number(def.window) || 1)) * 1000);
    const topN = lim('topN', 10);
    const maxNodes = lim('maxNodes', 200);

    const extra = parseRules(def.rules ?? '[]', intervalS);
    const problems = [...limitProblems, ...extra.problems].map(t.text);
    if (!(Number(def.window) > 0) && def.window !== undefined && def.window !== '') problems.push(RED._(`${TYPE}.errors.window`));
    const rules = bool(def.defaultRules, true) ? [...parseRules([...DEFAULT_RULES], intervalS).rules, ...extra.rules] : extra.rules;
    rules.forEach((r, i) => (r.id = i + 1));

    if (problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: problems.join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
      node.on('input', (_msg: NodeMessage, _send: SendFn, done: DoneFn) => done(new Error(RED._(`${TYPE}.errors.notConfigured`))));
      node.on('close', (_removed: boolean, done: () => void) => {
        status.close();
        done();
      });
      return;
    }

    const timed = RED.settings.rtEdgePerfTimedPerSecond;
    const book = new HookBook({
      filter: parseFilter(def.filter),
      exclude: [node.id],
      maxNodes,
      timedPerSecond: typeof timed === 'number' && timed >= 0 ? timed : 200,
    });
    const monitor = new PerfMonitor({ rules, book, intervalMs: intervalS * 1000, topN });
    const probe = new EventLoopProbe(10);
    const reader = new RegistryHistogramReader(metrics.registry as never);
    const label = 'rtedgePerf' + node.id.replace(/[^A-Za-z0-9_]/g, '_');
    const hooks = RED.hooks;
    let closed = false;
    let ticking = false;
    let alertsRaised = 0;
    let el = { p50: 0, p99: 0, max: 0, utilization: 0 };
    let mem = memory();
    const labels = { monitor: node.id };
    const attachedNodes = new Map<string, Record<string, string>>();

    // The hooks run for every message in the runtime while they are on: keep
    // them lean (the clock is only read for the messages that are timed).
    const clock = (): number => performance.now();
    const onReceive = (ev: ReceiveEvent): void => {
      const d = ev.destination;
      book.receive(d.id, d.node, ev.msg?._msgid, clock);
    };
    const onComplete = (ev: CompleteEvent): void => {
      book.complete(ev.node.id, ev.msg?._msgid, clock);
    };
    // Each node's timing stride follows its rate (hooks-core: timedPerSecond).
    let adaptTimer: NodeJS.Timeout | null = null;
    const ADAPT_MS = 100;

    const scheduler = new WindowScheduler({
      mode: hooks ? mode : 'off',
      windowMs,
      periodMs: periodS * 1000,
      intervalMs: intervalS * 1000,
      attach: () => {
        if (!hooks) return;
        hooks.remove(`*.${label}`); // never twice, whatever happened before
        hooks.add(`onReceive.${label}`, onReceive as (ev: unknown) => void);
        hooks.add(`onComplete.${label}`, onComplete as (ev: unknown) => void);
        if (adaptTimer === null) {
          let last = Date.now();
          adaptTimer = setInterval(() => {
            const now = Date.now();
            book.adapt(Math.max(1, now - last)); // the real slot length: timers run late when the loop is busy
            last = now;
          }, ADAPT_MS);
          adaptTimer.unref();
        }
      },
      detach: () => {
        hooks?.remove(`*.${label}`);
        if (adaptTimer !== null) clearInterval(adaptTimer);
        adaptTimer = null;
        book.clearPending();
      },
      tick: () => void tick(),
    });

    const sampling = (): { mode: string; windowMs: number; periodMs: number; hooksActive: boolean; windows: number } => ({
      mode: hooks ? mode : 'off',
      windowMs: mode === 'continuous' ? 0 : windowMs,
      periodMs: periodS * 1000,
      hooksActive: scheduler.active,
      windows: scheduler.windows,
    });

    const show = (): void => {
      const n = monitor.engine.firingCount();
      if (n > 0) status.set('error', RED._(`${TYPE}.status.alerts`, { n }));
      else if (mode === 'off' || !hooks) status.set('stopped', RED._(`${TYPE}.status.noHooks`));
      else status.set('ok', RED._(`${TYPE}.status.ok`, { n: book.trackers.size }));
    };

    const attachNodeMetrics = (): void => {
      for (const [id, t] of book.trackers) {
        if (attachedNodes.has(id)) continue;
        const l = { monitor: node.id, node: id, type: t.info.type };
        attachedNodes.set(id, l);
        fam.nodeLatency.attach(l, t.hist as unknown as SharedHistogram);
        fam.nodeMessages.attach(l, () => t.received);
        fam.nodeP99.attach(l, () => finePercentileUs(t.hist.fine, t.hist.count, 0.99, t.hist.maxUs) / 1e6);
      }
    };
    const detachNodeMetrics = (): void => {
      for (const l of attachedNodes.values()) {
        fam.nodeLatency.detach(l);
        fam.nodeMessages.detach(l);
        fam.nodeP99.detach(l);
      }
      attachedNodes.clear();
    };

    async function tick(): Promise<void> {
      if (closed || ticking) return;
      ticking = true;
      try {
        const e = probe.take();
        mem = memory();
        let workers = { samples: new Map(), totals: new Map() } as Awaited<ReturnType<RegistryHistogramReader['take']>>;
        try {
          workers = await reader.take();
        } catch (err) {
          node.debug(err);
        }
        if (closed) return;
        const alerts = monitor.tick({ eventLoop: e.delay, utilization: e.utilization, memory: mem, workers: workers.samples, workerTotals: workers.totals });
        const snap = monitor.snapshot(sampling());
        el = { p50: snap.eventLoop.delay.p50, p99: snap.eventLoop.delay.p99, max: snap.eventLoop.delay.max, utilization: e.utilization };
        attachNodeMetrics();
        alertsRaised += alerts.filter((a) => a.state === 'firing').length;
        node.send([
          { topic: 'snapshot', payload: snap },
          alerts.length ? alerts.map((a) => ({ topic: a.state === 'firing' ? 'alert' : 'resolved', payload: worded(a) })) : null,
          null,
        ]);
        show();
      } catch (err) {
        node.error(RED._(`${TYPE}.errors.tick`, { error: (err as Error).message }));
      } finally {
        ticking = false;
      }
    }

    fam.elP50.attach(labels, () => el.p50 / 1000);
    fam.elP99.attach(labels, () => el.p99 / 1000);
    fam.elMax.attach(labels, () => el.max / 1000);
    fam.elu.attach(labels, () => el.utilization);
    fam.rss.attach(labels, () => mem.rss);
    fam.heap.attach(labels, () => mem.heapUsed);
    fam.firing.attach(labels, () => monitor.engine.firingCount());
    fam.alerts.attach(labels, () => alertsRaised);
    fam.hooks.attach(labels, () => (scheduler.active ? 1 : 0));
    fam.evicted.attach(labels, () => book.evicted);

    if (!hooks) node.warn(RED._(`${TYPE}.errors.noHooks`));
    scheduler.start();
    show();

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      const cmd = typeof msg.topic === 'string' && msg.topic ? msg.topic : typeof msg.payload === 'string' ? msg.payload : '';
      if (cmd === 'health') {
        const report = monitor.health();
        msg.payload = { ...report, violations: report.violations.map(worded) };
        send([null, null, msg]);
      } else if (cmd === 'snapshot') {
        msg.payload = monitor.snapshot(sampling());
        send([msg, null, null]);
      } else if (cmd === 'reset') {
        detachNodeMetrics();
        book.reset();
        show();
      } else {
        done(new Error(RED._(`${TYPE}.errors.unknownCommand`, { cmd: String(cmd).slice(0, 40) })));
        return;
      }
      done();
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      scheduler.stop(); // removes the hooks
      probe.stop();
      detachNodeMetrics();
      for (const f of [fam.elP50, fam.elP99, fam.elMax, fam.elu, fam.rss, fam.heap, fam.firing, fam.alerts, fam.hooks, fam.evicted]) f.detach(labels);
      status.close();
      done();
    });
  }

  RED.nodes.registerType(TYPE, PerfMonitorNode as never);
};
