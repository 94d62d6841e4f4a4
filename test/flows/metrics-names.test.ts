// Checklist 31/32: every rtedge_* metric family that the shipped examples
// export, scraped from GET /metrics of ONE real Node-RED process running all
// of them at once, follows the naming, unit, type, bucket and label rules;
// and the whole scrape (default Node.js metrics included) passes
// `promtool check metrics` (Debian's `prometheus` package) with no complaint.
//
// All examples run: the gate example's own simulated controller (core TCP
// nodes) is moved to a free port, the RS485 example's port is pointed at a
// socat pty pair with a simulated door controller on the far end (the same
// helpers as test/flows/rs485-runtime.test.ts), and the dosing example's
// "dose 50 g" inject is pressed so the dose histograms have observations.
// (The shipped flows/*.json use the same node types plus dashboard widgets and
// share config node ids, so they are left to examples.test.ts.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { BAD_REASONS } from '../../nodes/rt-scale/sampler-core';
import { OUTCOMES } from '../../nodes/rt-journey-tracker/tracker-core';
import { FRAME_RESULTS } from '../../nodes/rt-rs485-watch/modbus-core';
import { allExampleFlows } from '../helpers/all-examples';
import { DoorSim } from '../helpers/door-sim';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { type PtyPair, ptyPair } from '../helpers/pty';
import { freePort, repoRoot, sleep, waitFor, walk } from '../helpers/util';

// ---- the Prometheus text exposition format (0.0.4) -------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < s.length) {
    const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/.exec(s.slice(i));
    if (!m) throw new Error(`bad labels in: ${line}`);
    i += m[0].length;
    let v = '';
    for (;;) {
      if (i >= s.length) throw new Error(`unterminated label value in: ${line}`);
      const c = s[i++];
      if (c === '"') break;
      if (c === '\\') {
        const e = s[i++];
        v += e === 'n' ? '\n' : e;
      } else v += c;
    }
    if (m[1] in out) throw new Error(`label ${m[1]} twice in: ${line}`);
    out[m[1]] = v;
    const rest = /^\s*,?/.exec(s.slice(i))!;
    i += rest[0].length;
  }
  return out;
}

export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const fam = (name: string): Family => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { name, type: 'untyped', help: '', samples: [] }));
    return f;
  };
  const owner = (sample: string): Family => {
    if (families.has(sample)) return families.get(sample)!;
    const m = /^(.*)_(bucket|sum|count)$/.exec(sample);
    const f = m ? families.get(m[1]) : undefined;
    if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
    return fam(sample); // a sample without # TYPE: untyped, rejected below
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
    if (m) {
      if (m[1] === 'TYPE') fam(m[2]).type = m[3].trim();
      else fam(m[2]).help = m[3];
      continue;
    }
    if (line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    owner(m[1]).samples.push({ name: m[1], labels: m[2] ? parseLabels(m[2], line) : {}, value });
  }
  return families;
}

// ---- what the code declares ------------------------------------------------

/** Every rtedge_* family registered by a node (metrics.counter/gauge/histogram/readerFamily/sharedHistogramFamily). */
function declaredFamilies(): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of walk(join(repoRoot, 'nodes')).filter((x) => x.endsWith('.ts'))) {
    const src = readFileSync(f, 'utf8');
    for (const m of src.matchAll(/\.(?:counter|gauge|histogram|readerFamily|sharedHistogramFamily)\(\s*'(rtedge_[^']*)'/g)) {
      out.set(m[1], relative(repoRoot, f));
    }
  }
  return out;
}

/** Units that are not Prometheus base units, as a name segment. */
const NON_BASE_UNIT = /_(ms|msec|millis|milliseconds|us|usec|micros|microseconds|ns|nanos|nanoseconds|minutes|hours|days|kb|mb|gb|kib|mib|kilobytes|megabytes|gigabytes|cg|mg|kg|centigrams|milligrams|kilograms|percent|pct)(_|$)/;
/** Base units a histogram may measure (time in seconds; grams for dosing, see README "rt-dosing"; a count of messages for rt-ws-batcher's batch size). */
const HISTOGRAM_UNIT = /_(seconds|bytes|grams|ratio|messages)$/;

/**
 * Histograms whose buckets are deliberately not latency buckets: they declare
 * their own list (nodes/rt-dosing/rt-dosing.ts), asserted exactly. Weights are
 * in grams (0.005 g .. 5 g) and a dose takes seconds to a minute (README
 * "rt-dosing": dose time in s); sub-millisecond buckets mean nothing there.
 */
const DECLARED_BUCKETS: Record<string, number[]> = {
  rtedge_dosing_overshoot_grams: [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
  rtedge_dosing_error_abs_grams: [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1],
  rtedge_dosing_dose_duration_seconds: [1, 2, 3, 4, 5, 6, 7, 7.5, 8, 10, 15, 20, 30, 60],
  rtedge_ws_batch_messages: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000], // nodes/rt-ws-batcher BATCH_SIZE_BOUNDS
};

/**
 * Label keys the code uses (registry.ts and the node adapters): the node id as
 * `node` (`scale` for a scale, `port` for a serial port, `monitor` for a perf
 * monitor), the timed node's `type` (perf monitor), and `result` / `reason`
 * where counted by kind; `le` only on histogram buckets.
 */
const ID_LABELS = new Set(['node', 'scale', 'port', 'monitor']);
const LABEL_KEYS = new Set([...ID_LABELS, 'type', 'result', 'reason', 'outcome', 'kind', 'source']);
/** rtedge_ingress_*{source} (rt-mqtt-ingress): a source name from the node's config, never from a payload. */
const SOURCE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** rtedge_tracker_journeys_total{outcome} and rtedge_tracker_inputs_total{kind} (rt-journey-tracker): closed sets. */
const TRACKER_LABELS: Record<string, Set<string>> = { outcome: new Set(OUTCOMES), kind: new Set(['frame', 'event', 'auth']) };

/** The closed sets of `result` and `reason` values, from the code. */
const RESULTS = new Set<string>([
  ...FRAME_RESULTS, // rtedge_rs485_frames_total (modbus-core)
  'ok', 'timeout', 'error', 'dropped', // rtedge_gate_commands_total (rt-gate-command)
  'under', 'over', 'aborted', // rtedge_dosing_doses_total (dose records)
  'matched', 'unmatched', // rtedge_tracker_auths_total (rt-journey-tracker)
  'replay', 'snapshot', // rtedge_ws_resumes_total (rt-ws-batcher)
]);
const REASONS = new Set<string>([
  ...BAD_REASONS, 'settling', // rtedge_hx711_bad_reads_total (rt-scale)
  'slow-client', 'hidden', 'topic-limit', 'handoff-full', 'unserialisable', // rtedge_ws_skipped_messages_total (rt-ws-batcher)
]);

const MAX_LABEL_VALUE = 64;

// ---- promtool ---------------------------------------------------------------

/**
 * `promtool check metrics` on an exposition: its complaints (empty = none).
 * Throws when promtool cannot be run: the check is required, not skipped.
 */
export function promtoolComplaints(text: string): string {
  const bin = process.env.PROMTOOL ?? 'promtool';
  const r = spawnSync(bin, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  if (r.error) {
    throw new Error(
      `cannot run ${bin} (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}): install Debian's "prometheus" package ` +
        `(apt-get install prometheus, which provides /usr/bin/promtool), or set PROMTOOL to a promtool binary`,
    );
  }
  const out = `${r.stdout}${r.stderr}`.trim();
  if (r.status !== 0 && !out) return `promtool exited with ${r.status} and no output`;
  return out;
}

// ---- the runtime -----------------------------------------------------------

describe('metric names, units, buckets and labels on GET /metrics (all examples in one runtime)', function () {
  this.timeout(90_000);
  let rt: ChildRuntime | null = null;
  let pty: PtyPair | null = null;
  let sim: DoorSim | null = null;
  let families = new Map<string, Family>();
  let scrape = '';
  let rtedge: Family[] = [];
  const ids = new Set<string>();
  const types = new Set<string>();

  before(async () => {
    const pair = (pty = await ptyPair());
    sim = new DoorSim({ path: pair.b, baudRate: 9600 });
    await sim.start();
    const gatePort = await freePort();
    const flows = await allExampleFlows({ gatePort, serialPath: pair.a });
    for (const n of flows) {
      ids.add(String(n.id));
      types.add(String(n.type));
    }
    assert.ok(existsSync(pair.a));
    rt = await startNodeRed({ settings: { logging: { console: { level: 'warn' } } } });
    await rt.deploy(flows);
    await sleep(2000);
    // A dose, so that the dose histograms (prom-client: no series before the first observation) are exported.
    const r = await rt.post('/inject/exd_50', {});
    assert.equal(r.status, 200, `press "dose 50 g": ${r.status} ${r.text}`);
    const declared = declaredFamilies();
    let text = '';
    // Every family the code declares, with at least one series (the dose, the
    // perf monitor's first report, the first flush, gate acks and door polls).
    await waitFor(
      async () => {
        text = (await rt!.get('/metrics')).text;
        const f = parseExposition(text);
        return [...declared.keys()].every((name) => (f.get(name)?.samples.length ?? 0) > 0);
      },
      40_000,
      'a series of every declared rtedge_* family',
      250,
    ).catch((err: Error) => {
      const f = parseExposition(text);
      const missing = [...declared.keys()].filter((name) => !(f.get(name)?.samples.length ?? 0));
      throw new Error(`${err.message}; missing: ${missing.join(', ')}\n${rt!.log().slice(-3000)}`);
    });
    scrape = text;
    families = parseExposition(text);
    rtedge = [...families.values()].filter((f) => f.name.startsWith('rtedge_'));
  });

  after(async () => {
    if (rt) {
      await rt.kill('SIGTERM');
      rt.cleanup();
    }
    await sim?.stop();
    await pty?.dispose();
  });

  it('exports rtedge_* families (and the default Node.js metrics) on the runtime\'s /metrics', () => {
    assert.ok(rtedge.length >= 40, `only ${rtedge.length} rtedge_* families`);
    assert.ok(families.has('process_cpu_user_seconds_total') || families.has('nodejs_heap_size_used_bytes'), 'default metrics');
    const declared = declaredFamilies();
    const undeclared = rtedge.filter((f) => !declared.has(f.name)).map((f) => f.name);
    assert.deepEqual(undeclared, [], 'every exported rtedge_* family is one the nodes declare');
  });

  it('names are rtedge_<thing>_<unit>[_total] in base units; counters end in _total; no summaries or untyped', () => {
    const bad: string[] = [];
    for (const f of rtedge) {
      if (!/^rtedge_[a-z0-9_]+$/.test(f.name)) bad.push(`${f.name}: not rtedge_[a-z0-9_]+`);
      if (/__|_$/.test(f.name)) bad.push(`${f.name}: empty name segment`);
      const unit = NON_BASE_UNIT.exec(f.name);
      if (unit) bad.push(`${f.name}: non-base unit _${unit[1]} (use seconds, bytes, grams, ratio)`);
      if (!['counter', 'gauge', 'histogram'].includes(f.type)) bad.push(`${f.name}: type ${f.type} (latency must be a histogram, not a summary)`);
      if (f.type === 'counter' && !f.name.endsWith('_total')) bad.push(`${f.name}: counter without _total`);
      if (f.type !== 'counter' && f.name.endsWith('_total')) bad.push(`${f.name}: ${f.type} ending in _total`);
      if (f.type === 'histogram' && !HISTOGRAM_UNIT.test(f.name)) bad.push(`${f.name}: histogram not in a base unit (_seconds, _bytes, _grams, _ratio)`);
      if (!f.help.trim()) bad.push(`${f.name}: no HELP`);
    }
    assert.deepEqual(bad, []);
  });

  it('histograms: latency buckets cover 0.5 ms .. 1 s (others: exactly the list they declare); series are well formed', () => {
    const bad: string[] = [];
    const histograms = rtedge.filter((f) => f.type === 'histogram');
    assert.ok(histograms.length >= 8, `histograms: ${histograms.map((f) => f.name).join(', ')}`);
    for (const f of histograms) {
      const series = new Map<string, { les: Array<[number, number]>; sum?: number; count?: number }>();
      for (const s of f.samples) {
        const { le, ...rest } = s.labels;
        const key = JSON.stringify(rest);
        const e = series.get(key) ?? { les: [] };
        series.set(key, e);
        if (s.name === `${f.name}_bucket`) {
          if (le === undefined) bad.push(`${f.name}${key}: bucket without le`);
          else e.les.push([le === '+Inf' ? Infinity : Number(le), s.value]);
        } else if (s.name === `${f.name}_sum`) e.sum = s.value;
        else if (s.name === `${f.name}_count`) e.count = s.value;
        else bad.push(`${f.name}: stray sample ${s.name}`);
      }
      for (const [key, e] of series) {
        const bounds = e.les.map(([b]) => b);
        const finite = bounds.filter((b) => Number.isFinite(b));
        if (bounds[bounds.length - 1] !== Infinity) bad.push(`${f.name}${key}: no +Inf bucket`);
        if (e.sum === undefined || e.count === undefined) bad.push(`${f.name}${key}: no _sum/_count`);
        if (e.les.some(([b, v], i) => i > 0 && (b <= e.les[i - 1][0] || v < e.les[i - 1][1]))) bad.push(`${f.name}${key}: buckets not increasing/cumulative`);
        if (e.count !== undefined && e.les.length && e.les[e.les.length - 1][1] !== e.count) bad.push(`${f.name}${key}: +Inf bucket != _count`);
        const declared = DECLARED_BUCKETS[f.name];
        if (declared) {
          if (JSON.stringify(finite) !== JSON.stringify(declared)) bad.push(`${f.name}${key}: buckets ${finite.join(',')} != declared ${declared.join(',')}`);
        } else {
          if (!f.name.endsWith('_seconds')) bad.push(`${f.name}: a non-latency histogram without a declared bucket list`);
          if (!finite.some((b) => b <= 0.0005)) bad.push(`${f.name}${key}: no bucket at or below le="0.0005" (buckets ${finite.join(',')})`);
          if (!finite.includes(1)) bad.push(`${f.name}${key}: no le="1" bucket (buckets ${finite.join(',')})`);
        }
      }
    }
    assert.deepEqual(bad, []);
  });

  it('labels: keys from a fixed allow-list, values short and bounded (node ids, node types, closed result/reason sets)', () => {
    const bad = new Set<string>();
    for (const f of rtedge) {
      for (const s of f.samples) {
        for (const [k, v] of Object.entries(s.labels)) {
          const where = `${s.name}{${k}="${v.slice(0, 80)}"}`;
          if (v.length > MAX_LABEL_VALUE) bad.add(`${where}: value longer than ${MAX_LABEL_VALUE}`);
          if (k === 'le') {
            if (f.type !== 'histogram' || s.name !== `${f.name}_bucket`) bad.add(`${where}: le outside a histogram bucket`);
            continue;
          }
          if (!LABEL_KEYS.has(k)) bad.add(`${where}: label key not in ${[...LABEL_KEYS].join(',')}`);
          else if (ID_LABELS.has(k) && !ids.has(v)) bad.add(`${where}: not the id of a deployed node`);
          else if (k === 'type' && !types.has(v)) bad.add(`${where}: not a deployed node type`);
          else if (k === 'result' && !RESULTS.has(v)) bad.add(`${where}: not a known result`);
          else if (k === 'reason' && !REASONS.has(v)) bad.add(`${where}: not a known reason`);
          else if (k in TRACKER_LABELS && !TRACKER_LABELS[k].has(v)) bad.add(`${where}: not a known ${k}`);
          else if (k === 'source' && (!SOURCE_RE.test(v) || !s.name.startsWith('rtedge_ingress_'))) bad.add(`${where}: not a configured ingress source`);
        }
      }
    }
    assert.deepEqual([...bad], []);
  });

  it('the whole scrape passes `promtool check metrics` with no complaint (default Node.js metrics included)', () => {
    assert.ok(scrape.includes('# TYPE nodejs_active_handles gauge'), 'the default metrics are in the scrape');
    const complaints = promtoolComplaints(scrape);
    assert.equal(complaints, '', `promtool check metrics:\n${complaints}`);
  });
});
