// npm run bench -- hx711-latency [--seconds 60]
//
// Data-ready -> ring latency of the HX711 sampler at 80 SPS, in a real Node-RED
// runtime (node-red-node-test-helper, in this process) on the simulated
// backend, rt-scale's HAL worker:
//   1. idle;
//   2. the flow engine blocked 500 ms every second by a busy function node
//      (inject every 1 s -> function busy-looping 500 ms);
//   3. cpu_hog: the load a station really sees, other processes busy on the
//      same cores: one CPU-bound child process per core (`node -e 'for(;;){}'`)
//      at niceness 0, as a browser rendering the dashboard or a compile would be.
// The simulated chip converts on its own crystal (80 SPS), whether or not the
// reader is there: a reader later than a period finds only the latest
// conversion, the one before was overwritten unread. Latency = the reader's
// lateness from the chip's own data-ready edge to the sample in the ring (where
// the dosing controller takes it), what a record carries (REC_LAT_US).
// samples_missed = conversions with no published sample (gaps in the
// data-ready times: overwritten unread, discarded reads, ring overflows).
// bad_reads = the scale's bad-read counters (no_data, late, frame_long, ...).
// The HAL thread's niceness is read from /proc/<pid>/task/*/stat.
// Targets: p95 < 5 ms from data-ready to controller in every phase and p99
// under load (blocked flow engine and cpu hogs) rises < 20 % over idle
// (DESIGN.md); no sample missed and no bad read in any phase.
// Last line: {"bench":"hx711-latency","idle_p99_ms","load_p99_ms","cpu_hog_p99_ms",
//             "cpu_hog_bad_reads","samples_missed",...,"targets_met":{...}}
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, setPriority } from 'node:os';

import type { DecodedSample, ScaleNode } from '../nodes/rt-scale/scale-api';
import { BAD_REASONS } from '../nodes/rt-scale/sampler-core';
import { flag, log, machine, percentile, result, round } from './lib/common';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

const SECONDS = Number(flag('seconds') ?? process.env.BENCH_SECONDS ?? 60);
/** The HAL thread's niceness asked for (settings.rtEdgeHalNice; default -10). 0: what a user without CAP_SYS_NICE gets. */
const HAL_NICE = flag('hal-nice');
if (HAL_NICE !== undefined) helper.settings({ rtEdgeHalNice: Number(HAL_NICE) });
/** CPU-bound processes in the cpu_hog phase (default one per core). */
const HOGS = Number(flag('hogs') ?? cpus().length);
/** Phases to run (comma-separated), default all. */
const PHASES = (flag('phases') ?? 'idle,load,cpu_hog').split(',') as Phase[];
const PERIOD_US = 12_500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Phase = 'idle' | 'load' | 'cpu_hog';

interface Run {
  lat: number[];
  missed: number;
  samples: number;
  bad: Record<string, number>;
  nice: Record<string, number>;
}

function flow(load: boolean): object[] {
  const f: object[] = [
    { id: 't', type: 'tab', label: 'bench' },
    { id: 'sc', type: 'rt-scale', name: 'bench', version: 1, backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 5000 },
    { id: 'hx', z: 't', type: 'rt-hx711', version: 1, scale: 'sc', rate: 10, deltaG: 0.5, wires: [[]] },
  ];
  if (load) {
    f.push(
      { id: 'tick', z: 't', type: 'inject', repeat: '1', once: true, onceDelay: 0.5, props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['busy']] },
      { id: 'busy', z: 't', type: 'function', name: 'busy 500 ms', func: 'const end = Date.now() + 500; while (Date.now() < end) {} return null;', outputs: 1, wires: [[]] },
    );
  }
  return f;
}

/** This process's threads by niceness (/proc/self/task/<tid>/stat field 19): {"0": 11, "-10": 1} = one thread raised. */
function threadNice(): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const nice = st.slice(st.lastIndexOf(')') + 2).split(' ')[16];
      out[nice] = (out[nice] ?? 0) + 1;
    }
  } catch {
    /* not Linux */
  }
  return out;
}

/** One CPU-bound process per core, niceness 0. */
function startHogs(): ChildProcess[] {
  const hogs: ChildProcess[] = [];
  for (let i = 0; i < HOGS; i++) {
    const c = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
    if (c.pid) setPriority(c.pid, 0);
    hogs.push(c);
  }
  return hogs;
}
let hogs: ChildProcess[] = [];
const stopHogs = (): void => {
  for (const h of hogs) h.kill('SIGKILL');
  hogs = [];
};
process.on('exit', stopHogs);

function badReads(sc: ScaleNode): Record<string, number> {
  const m = sc.sharedMetrics();
  const r: Record<string, number> = {};
  if (m) for (const k of BAD_REASONS) r[k] = m.counter(k);
  return r;
}

async function measure(phase: Phase): Promise<Run> {
  await new Promise<void>((resolve, reject) =>
    helper.load(
      [require('../nodes/rt-scale/rt-scale'), require('../nodes/rt-hx711/rt-hx711'), require('@node-red/nodes/core/common/20-inject.js'), require('@node-red/nodes/core/function/10-function.js')],
      flow(phase === 'load'),
      (err: Error | undefined) => (err ? reject(err) : resolve()),
    ),
  );
  const run: Run = { lat: [], missed: 0, samples: 0, bad: {}, nice: {} };
  let lastT = 0;
  let warm = true;
  const sc = helper.getNode('sc') as ScaleNode;
  sc.attach({
    onSamples: (batch: readonly DecodedSample[]) => {
      for (const s of batch) {
        if (warm) continue;
        run.lat.push(s.latUs / 1000);
        if (lastT) run.missed += Math.max(0, Math.round((s.tUs - lastT) / PERIOD_US) - 1);
        lastT = s.tUs;
        run.samples++;
      }
    },
  });
  if (phase === 'cpu_hog') hogs = startHogs();
  await sleep(1000);
  run.nice = threadNice();
  const bad0 = badReads(sc);
  warm = false;
  await sleep(SECONDS * 1000);
  const bad1 = badReads(sc);
  for (const k of Object.keys(bad1)) if (bad1[k] - (bad0[k] ?? 0) > 0) run.bad[k] = bad1[k] - (bad0[k] ?? 0);
  stopHogs();
  await helper.unload();
  await sleep(300);
  return run;
}

function stats(r: Run): { p50: number; p95: number; p99: number; max: number } {
  const s = [...r.lat].sort((a, b) => a - b);
  return { p50: round(percentile(s, 0.5)), p95: round(percentile(s, 0.95)), p99: round(percentile(s, 0.99)), max: round(s[s.length - 1] ?? NaN) };
}
const total = (b: Record<string, number>): number => Object.values(b).reduce((a, v) => a + v, 0);

async function main(): Promise<void> {
  log(`hx711-latency: ${SECONDS} s per phase at 80 SPS`, JSON.stringify(machine()));
  const none: Run = { lat: [], missed: 0, samples: 0, bad: {}, nice: {} };
  const runs: Record<Phase, Run> = { idle: none, load: none, cpu_hog: none };
  for (const p of PHASES) {
    runs[p] = await measure(p);
    log(p, JSON.stringify(stats(runs[p])), `samples ${runs[p].samples} missed ${runs[p].missed} bad ${JSON.stringify(runs[p].bad)} thread nice ${JSON.stringify(runs[p].nice)}`);
  }
  const si = stats(runs.idle);
  const sl = stats(runs.load);
  const sh = stats(runs.cpu_hog);
  const missed = runs.idle.missed + runs.load.missed + runs.cpu_hog.missed;
  const nice = runs.cpu_hog.nice;
  const targets_met = {
    idle_p95_lt_5ms: si.p95 < 5,
    load_p95_lt_5ms: sl.p95 < 5,
    cpu_hog_p95_lt_5ms: sh.p95 < 5,
    load_p99_rise_lt_20pct: sl.p99 < 1.2 * si.p99,
    cpu_hog_p99_rise_lt_20pct: sh.p99 < 1.2 * si.p99,
    samples_missed_0: missed === 0,
    bad_reads_0: total(runs.idle.bad) + total(runs.load.bad) + total(runs.cpu_hog.bad) === 0,
  };
  result({
    bench: 'hx711-latency',
    idle_p50_ms: si.p50,
    idle_p95_ms: si.p95,
    idle_p99_ms: si.p99,
    load_p95_ms: sl.p95,
    load_p99_ms: sl.p99,
    load_max_ms: sl.max,
    load_idle_p99_ratio: round(sl.p99 / si.p99, 2),
    cpu_hog_p95_ms: sh.p95,
    cpu_hog_p99_ms: sh.p99,
    cpu_hog_max_ms: sh.max,
    cpu_hog_idle_p99_ratio: round(sh.p99 / si.p99, 2),
    cpu_hog_bad_reads: total(runs.cpu_hog.bad),
    cpu_hog_bad_by_reason: runs.cpu_hog.bad,
    cpu_hog_samples_missed: runs.cpu_hog.missed,
    cpu_hog_processes: HOGS,
    samples_missed: missed,
    samples_missed_by_phase: { idle: runs.idle.missed, load: runs.load.missed, cpu_hog: runs.cpu_hog.missed },
    bad_reads_by_phase: { idle: total(runs.idle.bad), load: total(runs.load.bad), cpu_hog: total(runs.cpu_hog.bad) },
    samples: { idle: runs.idle.samples, load: runs.load.samples, cpu_hog: runs.cpu_hog.samples },
    samples_expected_per_phase: SECONDS * 80,
    thread_nice: nice,
    hal_nice_asked: HAL_NICE === undefined ? -10 : Number(HAL_NICE),
    seconds: SECONDS,
    targets_met,
    machine: machine(),
  });
  process.exit(0);
}

main().catch((e) => {
  stopHogs();
  log(e instanceof Error ? e.stack : String(e));
  process.exit(1);
});
