// npm run bench -- journey-egress
//
// The same JSONL workload through Node-RED's core `file` node and through
// rt-journey-egress, in one run, each in a real Node-RED process:
//  1. max sustained throughput: N journeys generated as fast as the flow engine
//     takes them; msgs/s = N / time until all N lines are in the file;
//  2. a fixed 5000 msg/s stream for D seconds: the flow engine's event-loop
//     delay p99 (perf_hooks, 1 ms resolution, preloaded probe), and lines lost;
//  3. memory: the RSS each added egress instance costs (instances share one
//     worker thread; the first instance pays for the thread).
// Last line: {"ours_msgs_per_s","core_msgs_per_s","ratio","ours_el_p99_ms",
// "core_el_p99_ms","lines_lost","rss_per_instance_mb", ...}.
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../test/helpers/nodered-child';
import { log, machine, result, round } from './lib/common';

const N = Number(process.env.BENCH_N ?? 200_000);
const RATE = Number(process.env.BENCH_RATE ?? 5000);
const DURATION_S = Number(process.env.BENCH_SECONDS ?? 10);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function countLines(file: string): number {
  if (!existsSync(file)) return 0;
  const b = readFileSync(file);
  let n = 0;
  for (let i = 0; i < b.length; i++) if (b[i] === 10) n++;
  return n;
}

type Kind = 'core' | 'ours';

function sink(kind: Kind, file: string, id = 'sink'): Record<string, unknown> {
  return kind === 'core'
    ? { id, z: 't', type: 'file', name: 'core file', filename: file, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] }
    : { id, z: 't', type: 'rt-journey-egress', name: 'egress', version: 1, path: file, flushCount: 10, flushMs: 1000, fsync: 'none', queueLimit: 1_000_000, createDir: true, report: false, wires: [[]] };
}

/** Generator: on inject, sends `total` journeys, `chunk` per tick every `everyMs` (0 = as fast as possible). */
function gen(total: number, chunk: number, everyMs: number): Record<string, unknown> {
  return {
    id: 'gen',
    z: 't',
    type: 'function',
    name: 'journeys',
    outputs: 1,
    func: `
      let n = 0; const total = ${total}, chunk = ${chunk}, every = ${everyMs};
      const start = Date.now();
      function tick() {
        const due = every > 0 ? Math.min(total, Math.floor((Date.now() - start) / every + 1) * chunk) : Math.min(total, n + chunk);
        while (n < due) { n++; node.send({ payload: { seq: n, track_id: 't' + n, gate: 'G1', entered: start + n, exited: start + n + 5000, items: n % 7, auth: 'card' } }); }
        if (n < total) setTimeout(tick, every > 0 ? 1 : 0);
      }
      tick();
      return null;`,
    wires: [['sink']],
  };
}

const inject = { id: 'go', z: 't', type: 'inject', once: true, onceDelay: 0.5, repeat: '', props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['gen']] };

async function probe(rt: ChildRuntime, out: string): Promise<{ p50_ms: number; p99_ms: number; max_ms: number; rss_mb: number }> {
  const before = existsSync(out) ? statSync(out).mtimeMs : 0;
  rt.proc.kill('SIGWINCH');
  for (let i = 0; i < 100; i++) {
    await sleep(20);
    if (existsSync(out) && statSync(out).mtimeMs !== before) break;
  }
  return JSON.parse(readFileSync(out, 'utf8'));
}

async function start(): Promise<{ rt: ChildRuntime; probeOut: string }> {
  const probeOut = join(require('node:os').tmpdir(), `rtedge-el-${process.pid}-${Date.now()}.json`);
  const rt = await startNodeRed({
    execArgv: ['--expose-gc', '-r', join(__dirname, 'lib', 'el-probe.js')],
    env: { RTEDGE_EL_PROBE_OUT: probeOut },
    settings: { logging: { console: { level: 'warn' } } },
  });
  rt.proc.once('exit', () => rmSync(probeOut, { force: true }));
  return { rt, probeOut };
}

async function throughput(kind: Kind): Promise<number> {
  const { rt } = await start();
  try {
    const file = join(rt.userDir, `tp-${kind}.jsonl`);
    await rt.deploy([{ id: 't', type: 'tab', label: 'bench' }, inject, gen(N, 500, 0), sink(kind, file)]);
    // from the inject firing (onceDelay 0.5 s after deploy) to the last line on disk
    const t0 = Date.now() + 500;
    let first = 0;
    let last = 0;
    let lastChange = Date.now();
    for (;;) {
      const n = countLines(file);
      if (n > 0 && first === 0) first = Date.now();
      if (n !== last) lastChange = Date.now();
      last = n;
      if (n >= N) break;
      if (Date.now() - lastChange > 20_000 || Date.now() - t0 > 300_000) throw new Error(`${kind}: stuck at ${n}/${N} lines\n${rt.log().slice(-1500)}`);
      await sleep(n > 0 ? 20 : 5);
    }
    const secs = (Date.now() - t0) / 1000;
    log(`${kind}: first line after ${first - t0} ms, last after ${Math.round(secs * 1000)} ms`);
    return N / Math.max(secs, 0.001);
  } finally {
    await rt.kill('SIGTERM');
    rt.cleanup();
  }
}

async function steady(kind: Kind): Promise<{ el_p99_ms: number; el_max_ms: number; lost: number; rss_mb: number }> {
  const { rt, probeOut } = await start();
  try {
    const file = join(rt.userDir, `steady-${kind}.jsonl`);
    const total = RATE * DURATION_S;
    await rt.deploy([{ id: 't', type: 'tab', label: 'bench' }, inject, gen(total, RATE / 100, 10), sink(kind, file)]);
    await sleep(400); // before the inject fires
    await probe(rt, probeOut); // reset
    await sleep(DURATION_S * 1000 + 500);
    const el = await probe(rt, probeOut);
    // let everything land, then count
    const end = Date.now() + 30_000;
    while (countLines(file) < total && Date.now() < end) await sleep(100);
    await rt.kill('SIGTERM');
    const lost = total - countLines(file);
    return { el_p99_ms: el.p99_ms, el_max_ms: el.max_ms, lost, rss_mb: el.rss_mb };
  } finally {
    await rt.kill('SIGKILL');
    rt.cleanup();
  }
}

async function rssPerInstance(): Promise<{ first_mb: number; per_instance_mb: number }> {
  const { rt, probeOut } = await start();
  const K = 201;
  // median of 3 readings, each after a forced GC
  const rssNow = async (): Promise<number> => {
    const r: number[] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(1500);
      r.push((await probe(rt, probeOut)).rss_mb);
    }
    return r.sort((a, b) => a - b)[1];
  };
  try {
    const tab = { id: 't', type: 'tab', label: 'mem' };
    const flows = (k: number): object[] => [tab, ...Array.from({ length: k }, (_, i) => ({ ...sink('ours', join(rt.userDir, `m${i}.jsonl`), `eg${i}`), y: 40 * i }))];
    // the first instance starts the shared worker thread: alternate 0 and 1 instance three times
    const firsts: number[] = [];
    let r1 = 0;
    for (let i = 0; i < 3; i++) {
      await rt.deploy([tab]);
      const r0 = await rssNow();
      await rt.deploy(flows(1));
      r1 = await rssNow();
      firsts.push(r1 - r0);
    }
    await rt.deploy(flows(K));
    const rK = await rssNow();
    log(`rss: first instance (starts the worker) +${firsts.map((v) => v.toFixed(1)).join(', +')} MB; 1 -> ${K} instances ${r1.toFixed(1)} -> ${rK.toFixed(1)} MB`);
    return { first_mb: firsts.sort((a, b) => a - b)[1], per_instance_mb: (rK - r1) / (K - 1) };
  } finally {
    await rt.kill('SIGTERM');
    rt.cleanup();
  }
}

async function main(): Promise<void> {
  log(`journey-egress: N=${N} for throughput, ${RATE} msg/s for ${DURATION_S} s steady`);
  log(JSON.stringify(machine()));
  const coreTp = await throughput('core');
  log(`core file node: ${Math.round(coreTp)} msgs/s`);
  const oursTp = await throughput('ours');
  log(`rt-journey-egress: ${Math.round(oursTp)} msgs/s`);
  const coreSteady = await steady('core');
  log(`core @${RATE}/s: el p99 ${coreSteady.el_p99_ms.toFixed(2)} ms, max ${coreSteady.el_max_ms.toFixed(1)} ms, lost ${coreSteady.lost}`);
  const oursSteady = await steady('ours');
  log(`ours @${RATE}/s: el p99 ${oursSteady.el_p99_ms.toFixed(2)} ms, max ${oursSteady.el_max_ms.toFixed(1)} ms, lost ${oursSteady.lost}`);
  const mem = await rssPerInstance();
  result({
    bench: 'journey-egress',
    ours_msgs_per_s: Math.round(oursTp),
    core_msgs_per_s: Math.round(coreTp),
    ratio: round(oursTp / coreTp, 2),
    ours_el_p99_ms: round(oursSteady.el_p99_ms, 2),
    core_el_p99_ms: round(coreSteady.el_p99_ms, 2),
    lines_lost: oursSteady.lost,
    core_lines_lost: coreSteady.lost,
    rss_per_instance_mb: round(mem.per_instance_mb, 2),
    rss_first_instance_mb: round(mem.first_mb, 2),
    machine: machine(),
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
