// Invariants and alerts. A rule compares one metric (a percentile of a latency
// distribution, or a gauge) over a window of whole intervals with a threshold.
// It is evaluated once per interval, so it can change state at most once per
// interval: `firing` after `for` consecutive violating intervals (one alert
// message), `resolved` when the value falls below threshold * (1 - hysteresis)
// (one resolved message). An interval with no data keeps the state. Pure.
import { type Coded, coded } from '../shared/coded';
import { emptySample, type FineSample, mergeInto, percentileMs } from './hist-core';

export type Severity = 'info' | 'warning' | 'critical';
export const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];

/**
 * Metric names a rule may use:
 *  - eventloop.delay         event-loop delay distribution, ms (percentile)
 *  - eventloop.utilization   event-loop utilisation 0..1 (gauge)
 *  - memory.rss, memory.heapUsed, memory.heapTotal, memory.external   MB (gauge)
 *  - memory.rssGrowth        MB of RSS above the lowest RSS seen since the monitor started (gauge): a leak
 *                            keeps it growing, while a healthy runtime's size (126 MB running every example,
 *                            151 MB with the dashboard) does not matter
 *  - node.latency            processing time of the node(s) named by `node` (id, name or type), ms (percentile)
 *  - rtedge_..._seconds      any histogram in the runtime's metrics registry (worker-side sampler latency,
 *                            control step, gate queue delay, egress flush...), all label sets merged, ms (percentile)
 */
export const GAUGES = ['eventloop.utilization', 'memory.rss', 'memory.rssGrowth', 'memory.heapUsed', 'memory.heapTotal', 'memory.external'] as const;
export const DISTRIBUTIONS = ['eventloop.delay', 'node.latency'] as const;

export interface RuleSpec {
  metric: string;
  percentile?: number;
  threshold: number;
  /** seconds; rounded up to whole intervals; 0/absent = one interval */
  window?: number;
  severity?: Severity;
  category?: string;
  /** node id, name or type (node.latency only) */
  node?: string;
  /** consecutive violating intervals before firing (default 1) */
  for?: number;
  /** fraction below the threshold the value must fall to resolve (default 0.1) */
  hysteresis?: number;
  /** optional name shown in messages */
  name?: string;
}

export interface Rule {
  id: number;
  metric: string;
  kind: 'distribution' | 'gauge';
  percentile: number;
  threshold: number;
  windowIntervals: number;
  severity: Severity;
  category: string;
  node?: string;
  forIntervals: number;
  hysteresis: number;
  name: string;
  unit: 'ms' | 'MB' | 'ratio';
}

/**
 * The defaults, from the source documents (DESIGN.md "Facts from the source
 * documents"), except memory, set from the memory benchmark (npm run bench --
 * memory): a healthy runtime running every example reads 133 MB of RSS without
 * the dashboard flows and 149 MB with them once settled, and 189 MB ten
 * minutes later with its live heaps flat (+1 MB): V8 keeps pages committed
 * (the main heap 53 -> 79 MB, the HAL worker's 10 -> 22 MB) and RSS levels off
 * after about 5 minutes. An absolute RSS limit of 100 MB would fire at once, so
 * the memory rule watches growth: RSS 100 MB above the lowest seen since start
 * (2.5x the healthy growth measured, 40 MB), for 3 intervals in a row, catches
 * a leak whatever the size of the flows, and ignores a one-off jump (a
 * dashboard page opened, a big deploy).
 * The event-loop rule: p99 above 50 ms for 3 intervals in a row. The probe's
 * resolution is 10 ms, so a healthy runtime running every example reads p99
 * 10-21 ms on a busy 2-core host: 20 ms sat on that noise floor and fired; and
 * a deploy blocks the loop for a moment (p99 284 ms in the interval of a
 * deploy of every example, then 60 ms while the workers start), which is not
 * the sustained lag the rule is for.
 */
export const DEFAULT_RULES: readonly RuleSpec[] = [
  { metric: 'eventloop.delay', percentile: 99, threshold: 50, for: 3, severity: 'warning', category: 'eventloop' },
  { metric: 'memory.rssGrowth', threshold: 100, for: 3, severity: 'warning', category: 'memory' },
  { metric: 'rtedge_ws_latency_seconds', percentile: 99, threshold: 50, severity: 'warning', category: 'websocket' },
  { metric: 'rtedge_gate_queue_delay_seconds', percentile: 99, threshold: 100, severity: 'warning', category: 'gate' },
];

const METRIC_RE = /^rtedge_[a-z0-9_]+_seconds$/;

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function unitOf(metric: string): Rule['unit'] {
  if (metric.startsWith('memory.')) return 'MB';
  if (metric === 'eventloop.utilization') return 'ratio';
  return 'ms';
}

function defaultCategory(metric: string): string {
  if (metric.startsWith('eventloop.')) return 'eventloop';
  if (metric.startsWith('memory.')) return 'memory';
  if (metric === 'node.latency') return 'node';
  return 'worker';
}

/**
 * Checks and normalises rules. Returns the rules and a list of problems, one
 * coded message each (RULE_PROBLEMS: `rule` {n: 2, problem: rule-bad-threshold}
 * reads "rule 2: threshold must be a number > 0"); any problem means the
 * configuration is rejected.
 */
export function parseRules(input: unknown, intervalS: number): { rules: Rule[]; problems: Coded[] } {
  const problems: Coded[] = [];
  const rules: Rule[] = [];
  let list: unknown = input;
  if (typeof input === 'string') {
    const text = input.trim();
    if (text === '') list = [];
    else {
      try {
        list = JSON.parse(text);
      } catch (e) {
        return { rules, problems: [coded('rules-bad-json' satisfies RuleProblem, { error: (e as Error).message })] };
      }
    }
  }
  if (!Array.isArray(list)) return { rules, problems: [coded('rules-not-array' satisfies RuleProblem)] };
  list.forEach((raw, i) => {
    const bad = (code: RuleProblem, params?: Coded['params']): void => void problems.push(coded('rule', { n: i + 1, problem: coded(code, params) }));
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      bad('rule-not-object');
      return;
    }
    const r = raw as Record<string, unknown>;
    const known = new Set(['metric', 'percentile', 'threshold', 'window', 'severity', 'category', 'node', 'for', 'hysteresis', 'name']);
    for (const k of Object.keys(r)) if (!known.has(k)) bad('rule-unknown-field', { field: k });
    const metric = r.metric;
    let kind: Rule['kind'] = 'distribution';
    if (typeof metric !== 'string' || metric === '') {
      bad('rule-no-metric');
      return;
    }
    if ((GAUGES as readonly string[]).includes(metric)) kind = 'gauge';
    else if (!(DISTRIBUTIONS as readonly string[]).includes(metric) && !METRIC_RE.test(metric)) {
      bad('rule-unknown-metric', { metric, known: [...DISTRIBUTIONS, ...GAUGES].join(', ') });
      return;
    }
    if (!isNum(r.threshold) || r.threshold <= 0) bad('rule-bad-threshold');
    let percentile = 99;
    if (r.percentile !== undefined) {
      if (kind === 'gauge') bad('rule-percentile-on-gauge', { metric });
      else if (!isNum(r.percentile) || r.percentile <= 0 || r.percentile > 100) bad('rule-bad-percentile');
      else percentile = r.percentile;
    }
    let windowIntervals = 1;
    if (r.window !== undefined) {
      if (!isNum(r.window) || r.window < 0) bad('rule-bad-window');
      else {
        windowIntervals = Math.max(1, Math.ceil(r.window / intervalS - 1e-9));
        if (windowIntervals > 60) bad('rule-window-too-long', { window: r.window, interval: intervalS });
      }
    }
    let severity: Severity = 'warning';
    if (r.severity !== undefined) {
      if (!SEVERITIES.includes(r.severity as Severity)) bad('rule-bad-severity', { severities: SEVERITIES.join(', ') });
      else severity = r.severity as Severity;
    }
    if (r.category !== undefined && (typeof r.category !== 'string' || !/^[A-Za-z0-9_.-]{1,32}$/.test(r.category))) {
      bad('rule-bad-category');
    }
    if (metric === 'node.latency') {
      if (typeof r.node !== 'string' || r.node.trim() === '') bad('rule-node-required');
    } else if (r.node !== undefined) bad('rule-node-not-applicable');
    let forIntervals = 1;
    if (r.for !== undefined) {
      if (!isNum(r.for) || !Number.isInteger(r.for) || r.for < 1 || r.for > 100) bad('rule-bad-for');
      else forIntervals = r.for;
    }
    let hysteresis = 0.1;
    if (r.hysteresis !== undefined) {
      if (!isNum(r.hysteresis) || r.hysteresis < 0 || r.hysteresis >= 1) bad('rule-bad-hysteresis');
      else hysteresis = r.hysteresis;
    }
    if (r.name !== undefined && typeof r.name !== 'string') bad('rule-bad-name');
    rules.push({
      id: i + 1,
      metric,
      kind,
      percentile,
      threshold: isNum(r.threshold) ? r.threshold : NaN,
      windowIntervals,
      severity,
      category: typeof r.category === 'string' ? r.category : defaultCategory(metric),
      node: typeof r.node === 'string' ? r.node.trim() : undefined,
      forIntervals,
      hysteresis,
      name: typeof r.name === 'string' && r.name ? r.name : describe(metric, kind, percentile, r.node),
      unit: unitOf(metric),
    });
  });
  return { rules: problems.length ? [] : rules, problems };
}

function describe(metric: string, kind: Rule['kind'], p: number, node: unknown): string {
  const base = kind === 'gauge' ? metric : `${metric} p${p}`;
  return typeof node === 'string' && node ? `${base} (${node})` : base;
}

/** What an interval provides to the rules: a distribution, a gauge value, or nothing (no data). */
export type IntervalValue = { dist: FineSample } | { gauge: number } | null;

/**
 * Codes of rule problems (catalog rt-perf-monitor.codes.<code>): the list as a
 * whole (rules-bad-json {error}, rules-not-array), or `rule` {n, problem}
 * where problem is one of the others.
 */
export const RULE_PROBLEMS = [
  'rules-bad-json',
  'rules-not-array',
  'rule',
  'rule-not-object',
  'rule-unknown-field',
  'rule-no-metric',
  'rule-unknown-metric',
  'rule-bad-threshold',
  'rule-percentile-on-gauge',
  'rule-bad-percentile',
  'rule-bad-window',
  'rule-window-too-long',
  'rule-bad-severity',
  'rule-bad-category',
  'rule-node-required',
  'rule-node-not-applicable',
  'rule-bad-for',
  'rule-bad-hysteresis',
  'rule-bad-name',
] as const;
type RuleProblem = (typeof RULE_PROBLEMS)[number];

/** Codes of alert messages: alert-firing / alert-resolved {name, value, unit, threshold}. */
export const ALERT_CODES = ['alert-firing', 'alert-resolved'] as const;

/** An alert; the core's `message` is coded (M = Coded), the adapter sends it worded (M = string). */
export interface AlertPayload<M = Coded> {
  state: 'firing' | 'resolved';
  severity: Severity;
  category: string;
  metric: string;
  value: number;
  threshold: number;
  unit: string;
  message: M;
  rule: number;
  name: string;
  node?: string;
  since: number;
}

interface RuleState {
  ring: IntervalValue[];
  streak: number;
  firing: boolean;
  since: number;
  last: number | null;
}

export interface RuleStatus {
  rule: number;
  name: string;
  firing: boolean;
  value: number | null;
  threshold: number;
}

const round = (v: number): number => (Math.abs(v) >= 100 ? Math.round(v * 10) / 10 : Math.round(v * 1000) / 1000);

export class RulesEngine {
  private readonly states: RuleState[];
  constructor(readonly rules: readonly Rule[]) {
    this.states = rules.map(() => ({ ring: [], streak: 0, firing: false, since: 0, last: null }));
  }

  /** The value of a rule over its window, or null when the window has no data. */
  private windowValue(rule: Rule, ring: IntervalValue[]): number | null {
    if (rule.kind === 'gauge') {
      let sum = 0;
      let n = 0;
      for (const v of ring) if (v && 'gauge' in v) (sum += v.gauge), n++;
      return n > 0 ? sum / n : null;
    }
    const acc = emptySample();
    for (const v of ring) if (v && 'dist' in v) mergeInto(acc, v.dist);
    return acc.count > 0 ? percentileMs(acc, rule.percentile) : null;
  }

  /**
   * One interval has passed: `read(rule)` gives that interval's value for the
   * rule. Returns the alert/resolved messages to send (at most one per rule).
   */
  evaluate(read: (rule: Rule) => IntervalValue, nowMs: number): AlertPayload[] {
    const out: AlertPayload[] = [];
    this.rules.forEach((rule, i) => {
      const st = this.states[i];
      st.ring.push(read(rule));
      while (st.ring.length > rule.windowIntervals) st.ring.shift();
      const value = this.windowValue(rule, st.ring);
      if (value === null) return; // no data: keep the state (and the last value)
      st.last = value;
      const shown = round(value);
      if (value > rule.threshold) {
        st.streak++;
        if (!st.firing && st.streak >= rule.forIntervals) {
          st.firing = true;
          st.since = nowMs;
          out.push(this.payload(rule, 'firing', shown, nowMs));
        }
      } else {
        st.streak = 0;
        if (st.firing && value <= rule.threshold * (1 - rule.hysteresis)) {
          st.firing = false;
          out.push(this.payload(rule, 'resolved', shown, st.since));
        }
      }
    });
    return out;
  }

  private payload(rule: Rule, state: AlertPayload['state'], value: number, since: number): AlertPayload {
    return {
      state,
      severity: rule.severity,
      category: rule.category,
      metric: rule.metric,
      value,
      threshold: rule.threshold,
      unit: rule.unit,
      message: coded(state === 'firing' ? 'alert-firing' : 'alert-resolved', { name: rule.name, value, unit: rule.unit, threshold: rule.threshold }),
      rule: rule.id,
      name: rule.name,
      ...(rule.node ? { node: rule.node } : {}),
      since,
    };
  }

  /** Rules currently firing, as alert payloads (for the health report). */
  violations(): AlertPayload[] {
    const out: AlertPayload[] = [];
    this.rules.forEach((rule, i) => {
      const st = this.states[i];
      if (st.firing) out.push(this.payload(rule, 'firing', st.last === null ? NaN : round(st.last), st.since));
    });
    return out;
  }

  status(): RuleStatus[] {
    return this.rules.map((rule, i) => ({
      rule: rule.id,
      name: rule.name,
      firing: this.states[i].firing,
      value: this.states[i].last === null ? null : round(this.states[i].last!),
      threshold: rule.threshold,
    }));
  }

  firingCount(): number {
    return this.states.filter((s) => s.firing).length;
  }
}
