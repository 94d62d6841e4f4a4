// npm run bench -- memory [--minutes 10] [--settle 20] [--node-options "--max-semi-space-size=2"]
//
// What the collection costs in memory, in real Node-RED processes with this
// tree's nodes loaded (test/helpers/nodered-child) and every shipped example
// merged as `npm start` and the flow tests merge them
// (scripts/shipped-flows.mjs; the gate example's controller on a free port,
// the RS485 example on a pty with a simulated door controller behind it):
//  - bare: Node-RED with no flows (every installed node module loaded,
//    Dashboard 2.0 included, as on any install that has it);
//  - then every example without the dashboard flows;
//  - then every example, dashboard flows included (no browser connected);
//  - growth: left running --minutes (default 10), RSS at the end minus RSS at
//    the start, with a reading every minute in the log.
// All in one process (two identical bare processes differ by tens of MB of RSS).
// A reading forces a full GC in every thread first (--expose-gc; the probe,
// bench/lib/mem-probe, is preloaded in the main thread and inherited by the
// workers), and is the median of 3 readings 2 s apart. Per worker thread: its
// V8 heap (used), by the key of the worker (one thread per key).
// Targets: all_no_dashboard_rss_mb - bare_rss_mb <= 25, growth <= 5 MB.
// Last line: {"bench":"memory","bare_rss_mb","all_rss_mb","all_no_dashboard_rss_mb","growth_10min_mb",...,"targets_met":{...}}
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { allExampleFlows, exampleFiles } from '../test/helpers/all-examples';
import { DoorSim } from '../test/helpers/door-sim';
import { type ChildRuntime, startNodeRed } from '../test/helpers/nodered-child';
import { ptyPair } from '../test/helpers/pty';
import { freePort, repoRoot } from '../test/helpers/util';
import { flag, log, machine, result, round } from './lib/common';

const MINUTES = Number(flag('minutes') ?? 10);
const SETTLE_S = Number(flag('settle') ?? 20);
/** extra options for the Node-RED process (e.g. V8 heap flags), as a user would put in NODE_OPTIONS */
const NODE_OPTIONS = (flag('node-options') ?? '').split(' ').filter(Boolean);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Flow = Record<string, unknown>;

interface Reading {
  rss_mb: number;
  malloced_mb: number;
  heap_used_mb: number;
  heap_total_mb: number;
  external_mb: number;
  workers: Array<{ key: string; heap_used_mb: number; heap_total_mb: number }>;
}

// The same merge and port rewrites as the flow tests (test/helpers/all-examples): the store gate example
// gets ports of its own, so its stand-in gate controller never shares a `tcp in` port with the gate example.
async function examples(withDashboard: boolean, gatePort: number, serialPath: string): Promise<{ flows: Flow[]; files: string[] }> {
  const files = (await exampleFiles())
    .map((f) => relative(repoRoot, f))
    .filter((f) => withDashboard || !(JSON.parse(readFileSync(join(repoRoot, f), 'utf8')) as Flow[]).some((n) => String(n.type).startsWith('ui-')));
  return { flows: await allExampleFlows({ gatePort, serialPath, files }), files };
}

async function start(dir: string): Promise<ChildRuntime> {
  return startNodeRed({
    execArgv: [...NODE_OPTIONS, '--expose-gc', '-r', join(__dirname, 'lib', 'mem-probe.js')],
    env: { RTEDGE_MEM_PROBE_DIR: dir },
    settings: { logging: { console: { level: 'warn' } } },
  });
}

/** One reading: every thread GCs and reports; waits for the workers' answers. */
async function readOnce(rt: ChildRuntime, dir: string): Promise<Reading> {
  const before = existsSync(join(dir, 'main.json')) ? readFileSync(join(dir, 'main.json'), 'utf8') : '';
  rt.proc.kill('SIGWINCH');
  let main: { stamp: string; rss_mb: number; heap_used_mb: number; heap_total_mb: number; external_mb: number; malloced_mb: number } | null = null;
  for (let i = 0; i < 100 && !main; i++) {
    await sleep(20);
    const now = existsSync(join(dir, 'main.json')) ? readFileSync(join(dir, 'main.json'), 'utf8') : '';
    if (now && now !== before) main = JSON.parse(now);
  }
  if (!main) throw new Error('the memory probe did not answer (is bench/lib/mem-probe preloaded?)');
  await sleep(1000); // workers look every 200 ms, then GC
  const workers: Reading['workers'] = [];
  for (const f of readdirSync(dir)) {
    if (!/^t\d+\.json$/.test(f)) continue;
    try {
      const w = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { stamp: string; key: string; heap_used_mb: number; heap_total_mb: number };
      if (w.stamp === main.stamp) workers.push({ key: w.key, heap_used_mb: w.heap_used_mb, heap_total_mb: w.heap_total_mb });
    } catch {
      /* being written or removed */
    }
  }
  return { rss_mb: main.rss_mb, malloced_mb: main.malloced_mb, heap_used_mb: main.heap_used_mb, heap_total_mb: main.heap_total_mb, external_mb: main.external_mb, workers: workers.sort((a, b) => a.key.localeCompare(b.key)) };
}

/** The median (by RSS) of 3 readings 2 s apart. */
async function reading(rt: ChildRuntime, dir: string): Promise<Reading> {
  const r: Reading[] = [];
  for (let i = 0; i < 3; i++) {
    if (i) await sleep(2000);
    r.push(await readOnce(rt, dir));
  }
  return r.sort((a, b) => a.rss_mb - b.rss_mb)[1];
}

const show = (r: Reading): string =>
  `RSS ${r.rss_mb.toFixed(1)} MB; main heap used/committed ${r.heap_used_mb.toFixed(1)}/${r.heap_total_mb.toFixed(1)} MB, external ${r.external_mb.toFixed(1)} MB, V8 malloced ${r.malloced_mb.toFixed(1)} MB` +
  (r.workers.length ? `; workers (heap used/committed): ${r.workers.map((w) => `${w.key} ${w.heap_used_mb.toFixed(1)}/${w.heap_total_mb.toFixed(1)} MB`).join(', ')}` : '; no worker threads') +
  `; committed by all heaps ${committed(r).toFixed(1)} MB`;
/** V8 heap memory committed by every isolate (main and workers). */
const committed = (r: Reading): number => r.heap_total_mb + r.workers.reduce((s, w) => s + w.heap_total_mb, 0);

async function main(): Promise<void> {
  log(`memory: bare Node-RED, every shipped example without and with the dashboard flows, then ${MINUTES} min of the latter (readings after a forced GC in every thread, median of 3; ${SETTLE_S} s to settle after a deploy)`);
  log(JSON.stringify(machine()));
  const pty = await ptyPair();
  const sim = new DoorSim({ path: pty.b, baudRate: 9600 });
  await sim.start();
  const runs: Array<{ rt: ChildRuntime; dir: string }> = [];
  const open = async (): Promise<{ rt: ChildRuntime; dir: string }> => {
    const dir = mkdtempSync(join(tmpdir(), 'rtedge-mem-'));
    const rt = await start(dir);
    runs.push({ rt, dir });
    return { rt, dir };
  };
  try {
    // One process, one baseline: bare, then every example but the dashboards,
    // then every example with them (a full deploy replaces the flows), then left running.
    // (Two identical bare processes can differ by 20+ MB of RSS on this machine:
    // figures from different processes are not compared.)
    const a = await open();
    await sleep(5000);
    const bare = await reading(a.rt, a.dir);
    log(`bare: ${show(bare)}`);
    const noDash = await examples(false, await freePort(), pty.a);
    log(`without the dashboard flows: ${noDash.files.length} examples (${noDash.files.map((f) => f.replace(/^examples\//, '')).join('; ')})`);
    await a.rt.deploy(noDash.flows);
    await sleep(SETTLE_S * 1000);
    const allNoDash = await reading(a.rt, a.dir);
    log(`every example but the dashboards: ${show(allNoDash)}`);
    const all = await examples(true, await freePort(), pty.a);
    await a.rt.deploy(all.flows);
    await sleep(SETTLE_S * 1000);
    const start0 = await reading(a.rt, a.dir);
    log(`every example (${all.files.length}), dashboards included: ${show(start0)}`);
    let end = start0;
    const trend: number[] = [round(start0.rss_mb, 1)];
    for (let m = 1; m <= MINUTES; m++) {
      await sleep(60_000 - (m === MINUTES ? 5000 : 1000)); // the final reading takes ~5 s, a minute's ~1 s
      const r = m === MINUTES ? await reading(a.rt, a.dir) : await readOnce(a.rt, a.dir);
      log(`  after ${m} min: ${show(r)}`);
      trend.push(round(r.rss_mb, 1));
      if (m === MINUTES) end = r;
    }
    if (/\[error\]/.test(a.rt.log())) log(`errors in the log:\n${a.rt.log().split('\n').filter((l) => /\[error\]/.test(l)).slice(0, 10).join('\n')}`);
    const growth = end.rss_mb - start0.rss_mb;
    const heapGrowth = end.heap_used_mb - start0.heap_used_mb + end.workers.reduce((s, w) => s + w.heap_used_mb, 0) - start0.workers.reduce((s, w) => s + w.heap_used_mb, 0);
    const committedGrowth = committed(end) - committed(start0);
    const growthKey = `growth_${MINUTES}min_mb`;
    const added = allNoDash.rss_mb - bare.rss_mb;
    // RSS moves with the pages V8 keeps committed after a GC (72 vs 45 MB for the same bare
    // runtime in two runs): the cost without that noise is what is outside the heaps plus what is live in them
    const used = (r: Reading): number => r.heap_used_mb + r.workers.reduce((a, w) => a + w.heap_used_mb, 0);
    const stable = (r: Reading): number => r.rss_mb - committed(r) + used(r);
    const addedStable = stable(allNoDash) - stable(bare);
    log(`added by every example but the dashboards: RSS ${added.toFixed(1)} MB; outside the heaps + live in them ${addedStable.toFixed(1)} MB (${(allNoDash.rss_mb - committed(allNoDash) - bare.rss_mb + committed(bare)).toFixed(1)} + ${(used(allNoDash) - used(bare)).toFixed(1)})`);
    result({
      bench: 'memory',
      bare_rss_mb: round(bare.rss_mb, 1),
      all_rss_mb: round(start0.rss_mb, 1),
      all_no_dashboard_rss_mb: round(allNoDash.rss_mb, 1),
      [growthKey]: round(growth, 1),
      all_no_dashboard_added_mb: round(added, 1),
      all_no_dashboard_added_live_mb: round(addedStable, 1),
      bare_heap_committed_mb: round(committed(bare), 1),
      all_heap_committed_mb: round(committed(start0), 1),
      heap_growth_mb: round(heapGrowth, 1),
      heap_committed_growth_mb: round(committedGrowth, 1),
      bare_heap_mb: round(bare.heap_used_mb, 1),
      all_heap_mb: round(start0.heap_used_mb, 1),
      all_no_dashboard_heap_mb: round(allNoDash.heap_used_mb, 1),
      worker_heaps_mb: Object.fromEntries(start0.workers.map((w) => [w.key, round(w.heap_used_mb, 1)])),
      worker_heap_total_mb: round(start0.workers.reduce((s, w) => s + w.heap_used_mb, 0), 1),
      end_rss_mb: round(end.rss_mb, 1),
      rss_by_minute_mb: trend,
      minutes: MINUTES,
      node_options: NODE_OPTIONS.join(' '),
      targets_met: { all_no_dashboard_minus_bare_le_25mb: added <= 25, [`${growthKey.replace(/_mb$/, '')}_le_5mb`]: growth <= 5 },
      machine: machine(),
    });
  } finally {
    for (const r of runs) {
      await r.rt.kill('SIGTERM');
      r.rt.cleanup();
      rmSync(r.dir, { recursive: true, force: true });
    }
    await sim.stop();
    await pty.dispose();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
