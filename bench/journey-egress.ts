// npm run bench -- journey-egress
//
// The same JSONL workload through Node-RED's core `file` node and through
// rt-journey-egress, in one run, each in a real Node-RED process:
//  1. max sustained throughput: N journeys generated as fast as the flow engine
//     takes them; msgs/s = N / time until all N journeys are accounted for
//     (in the file, or refused by a full queue and counted). Ours runs twice:
//     with a queue limit of 1 000 000 (disclosed: the whole burst fits, so the
//     figure is the writer's throughput) and with the node's default limit
//     (10 000), and once more with the default limit and a burst of 50 000
//     journeys sent in one tick (--burst), which overflows the queue: the
//     refused journeys are counted (rtedge_egress_dropped_total), not hidden in
//     a better ratio;
//  2. a fixed 5000 msg/s stream for D seconds: the flow engine's event-loop
//     delay p99 (perf_hooks, 1 ms resolution, preloaded probe), and lines lost;
//  3. memory: the RSS each added egress instance costs (instances share one
//     worker thread; the first instance pays for the thread).
// Every file is checked at the end, line by line: a journey written twice is a
// duplicate, a journey neither written nor counted as refused is lost; the two
// are counted separately. During a run the file is not re-read: its size is
// polled and only the appended bytes are scanned for newlines.
// Last line: {"bench":"journey-egress","ours_msgs_per_s","core_msgs_per_s","ratio",
// "ours_default_limit_dropped",...,"ours_el_p99_ms","core_el_p99_ms","lines_lost",
// "lines_duplicated",...,"rss_per_instance_mb","targets_met":{...}}.
import { closeSync, existsSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../test/helpers/nodered-child';
import { flag, log, machine, result, round } from './lib/common';

const N = Number(flag('n') ?? process.env.BENCH_N ?? 200_000);
const RATE = Number(flag('rate') ?? process.env.BENCH_RATE ?? 5000);
const DURATION_S = Number(flag('seconds') ?? process.env.BENCH_SECONDS ?? 10);
/** the queue limit of the throughput run (disclosed in the output); the node's default is 10 000 */
const BIG_LIMIT = 1_000_000;
const DEFAULT_LIMIT = 10_000;
/** journeys sent in one tick of the flow engine, against the default queue limit */
const BURST = Number(flag('burst') ?? 50_000);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Counts newlines in a growing file, reading only what was appended since the last call. */
class LineCounter {
  private offset = 0;
  private n = 0;
  private readonly buf = Buffer.alloc(1 << 20);
  constructor(private readonly file: string) {}
  count(): number {
    if (!existsSync(this.file)) return this.n;
    const size = statSync(this.file).size;
    if (size <= this.offset) return this.n;
    const fd = openSync(this.file, 'r');
    try {
      while (this.offset < size) {
        const got = readSync(fd, this.buf, 0, Math.min(this.buf.length, size - this.offset), this.offset);
        if (got <= 0) break;
        for (let i = 0; i < got; i++) if (this.buf[i] === 10) this.n++;
        this.offset += got;
      }
    } finally {
      closeSync(fd);
    }
    return this.n;
  }
}

/** Once, at the end: distinct journeys written (by seq), duplicates, and lines that are not a journey. */
function audit(file: string): { distinct: number; duplicates: number; bad: number } {
  if (!existsSync(file)) return { distinct: 0, duplicates: 0, bad: 0 };
  const seen = new Set<number>();
  let duplicates = 0;
  let bad = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line === '') continue;
    let seq: unknown;
    try {
      seq = (JSON.parse(line) as { seq?: unknown }).seq;
    } catch {
      bad++;
      continue;
    }
    if (typeof seq !== 'number') bad++;
    else if (seen.has(seq)) duplicates++;
    else seen.add(seq);
  }
  return { distinct: seen.size, duplicates, bad };
}

type Kind = 'core' | 'ours';

function sink(kind: Kind, file: string, id = 'sink', queueLimit = BIG_LIMIT): Record<string, unknown> {
  return kind === 'core'
    ? { id, z: 't', type: 'file', name: 'core file', filename: file, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'none', wires: [[]] }
    : { id, z: 't', type: 'rt-journey-egress', name: 'egress', version: 1, path: file, flushCount: 10, flushMs: 1000, fsync: 'none', queueLimit, createDir: true, report: false, wires: [[]] };
}

/** rtedge_egress_dropped_total from the runtime's /metrics (0 when absent). */
async function droppedTotal(rt: ChildRuntime): Promise<number> {
  const r = await rt.get('/metrics');
  let n = 0;
  for (const m of r.text.matchAll(/^rtedge_egress_dropped_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
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
    if (!existsSync(out) || statSync(out).mtimeMs === before) continue;
    try {
      return JSON.parse(readFileSync(out, 'utf8'));
    } catch {
      /* being written */
    }
  }
  return JSON.parse(readFileSync(out, 'utf8'));
}

async function start(level = 'warn'): Promise<{ rt: ChildRuntime; probeOut: string }> {
  const probeOut = join(require('node:os').tmpdir(), `rtedge-el-${process.pid}-${Date.now()}.json`);
  const rt = await startNodeRed({
    execArgv: ['--expose-gc', '-r', join(__dirname, 'lib', 'el-probe.js')],
    env: { RTEDGE_EL_PROBE_OUT: probeOut },
    settings: { logging: { console: { level } } },
  });
  rt.proc.once('exit', () => rmSync(probeOut, { force: true }));
  return { rt, probeOut };
}

interface Tp {
  msgs_per_s: number;
  written: number;
  dropped: number;
  duplicates: number;
  lost: number;
}

/** N journeys as fast as the flow engine takes them; done when every one is in the file or counted as refused. */
async function throughput(kind: Kind, queueLimit = BIG_LIMIT, total = N, chunk = 500): Promise<Tp> {
  const N = total;
  // a refused journey is also a node error (one log line each): the log is kept quiet in this run
  const { rt } = await start('fatal');
  try {
    const file = join(rt.userDir, `tp-${kind}.jsonl`);
    await rt.deploy([{ id: 't', type: 'tab', label: 'bench' }, inject, gen(N, chunk, 0), sink(kind, file, 'sink', queueLimit)]);
    // from the inject firing (onceDelay 0.5 s after deploy) to the last journey accounted for
    const t0 = Date.now() + 500;
    const lines = new LineCounter(file);
    let first = 0;
    let last = -1;
    let lastChange = Date.now();
    let dropped = 0;
    for (;;) {
      const n = lines.count();
      if (n > 0 && first === 0) first = Date.now();
      if (n !== last) lastChange = Date.now();
      last = n;
      if (n >= N) break;
      if (kind === 'ours' && Date.now() - lastChange > 300) {
        // nothing new for a while: is the rest counted as refused?
        dropped = await droppedTotal(rt);
        if (n + dropped >= N) break; // the end is when the last line came (lastChange)
      }
      if (Date.now() - lastChange > 20_000 || Date.now() - t0 > 300_000) throw new Error(`${kind}: stuck at ${n}/${N} lines (${dropped} refused)\n${rt.log().slice(-1500)}`);
      await sleep(n > 0 ? 20 : 5);
    }
    const secs = (lastChange - t0) / 1000;
    if (kind === 'ours') dropped = await droppedTotal(rt);
    const a = audit(file);
    log(`${kind} (queue limit ${kind === 'ours' ? queueLimit : 'none'}, ${chunk} per tick): first line after ${first - t0} ms, all ${N} accounted for after ${Math.round(secs * 1000)} ms: ${a.distinct} written, ${dropped} refused (counted), ${a.duplicates} duplicated, ${N - a.distinct - dropped} lost${a.bad ? `, ${a.bad} unreadable lines` : ''}`);
    return { msgs_per_s: N / Math.max(secs, 0.001), written: a.distinct, dropped, duplicates: a.duplicates, lost: N - a.distinct - dropped };
  } finally {
    await rt.kill('SIGTERM');
    rt.cleanup();
  }
}

async function steady(kind: Kind): Promise<{ el_p99_ms: number; el_max_ms: number; lost: number; duplicates: number; rss_mb: number }> {
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
    const lines = new LineCounter(file);
    const end = Date.now() + 30_000;
    while (lines.count() < total && Date.now() < end) await sleep(100);
    await rt.kill('SIGTERM');
    const a = audit(file);
    return { el_p99_ms: el.p99_ms, el_max_ms: el.max_ms, lost: total - a.distinct, duplicates: a.duplicates, rss_mb: el.rss_mb };
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
  log(`journey-egress: N=${N} for throughput (ours with queue limit ${BIG_LIMIT} and with the default ${DEFAULT_LIMIT}), ${RATE} msg/s for ${DURATION_S} s steady`);
  log(JSON.stringify(machine()));
  const coreTp = await throughput('core');
  log(`core file node: ${Math.round(coreTp.msgs_per_s)} msgs/s`);
  const oursTp = await throughput('ours', BIG_LIMIT);
  log(`rt-journey-egress, queue limit ${BIG_LIMIT}: ${Math.round(oursTp.msgs_per_s)} msgs/s`);
  const oursDef = await throughput('ours', DEFAULT_LIMIT);
  log(`rt-journey-egress, default queue limit ${DEFAULT_LIMIT}: ${Math.round(oursDef.msgs_per_s)} journeys/s accounted for, ${oursDef.dropped} refused (counted)`);
  // a burst the default queue cannot hold: BURST journeys sent in one tick of the flow engine
  const oursBurst = await throughput('ours', DEFAULT_LIMIT, BURST, BURST);
  log(`rt-journey-egress, default queue limit ${DEFAULT_LIMIT}, ${BURST} journeys in one tick: ${oursBurst.written} written, ${oursBurst.dropped} refused (counted), ${oursBurst.lost} lost, ${oursBurst.duplicates} duplicated`);
  const coreSteady = await steady('core');
  log(`core @${RATE}/s: el p99 ${coreSteady.el_p99_ms.toFixed(2)} ms, max ${coreSteady.el_max_ms.toFixed(1)} ms, lost ${coreSteady.lost}, duplicated ${coreSteady.duplicates}`);
  const oursSteady = await steady('ours');
  log(`ours @${RATE}/s: el p99 ${oursSteady.el_p99_ms.toFixed(2)} ms, max ${oursSteady.el_max_ms.toFixed(1)} ms, lost ${oursSteady.lost}, duplicated ${oursSteady.duplicates}`);
  const mem = await rssPerInstance();
  const ratio = oursTp.msgs_per_s / coreTp.msgs_per_s;
  // with the default limit, only what was written counts as throughput
  const defWrittenPerS = (oursDef.written / N) * oursDef.msgs_per_s;
  const lost = oursTp.lost + oursDef.lost + oursBurst.lost + oursSteady.lost;
  const duplicated = oursTp.duplicates + oursDef.duplicates + oursBurst.duplicates + oursSteady.duplicates;
  result({
    bench: 'journey-egress',
    ours_msgs_per_s: Math.round(oursTp.msgs_per_s),
    core_msgs_per_s: Math.round(coreTp.msgs_per_s),
    ratio: round(ratio, 2),
    ours_queue_limit: BIG_LIMIT,
    ours_default_limit: DEFAULT_LIMIT,
    ours_default_limit_written_per_s: Math.round(defWrittenPerS),
    ours_default_limit_dropped: oursDef.dropped,
    ratio_default_limit: round(defWrittenPerS / coreTp.msgs_per_s, 2),
    burst: BURST,
    ours_burst_written: oursBurst.written,
    ours_burst_dropped: oursBurst.dropped,
    ours_el_p99_ms: round(oursSteady.el_p99_ms, 2),
    core_el_p99_ms: round(coreSteady.el_p99_ms, 2),
    lines_lost: lost,
    lines_duplicated: duplicated,
    core_lines_lost: coreTp.lost + coreSteady.lost,
    core_lines_duplicated: coreTp.duplicates + coreSteady.duplicates,
    rss_per_instance_mb: round(mem.per_instance_mb, 2),
    rss_first_instance_mb: round(mem.first_mb, 2),
    targets_met: {
      ratio_ge_5: ratio >= 5,
      el_p99_le_core: oursSteady.el_p99_ms <= coreSteady.el_p99_ms,
      lost_0: lost === 0,
      duplicated_0: duplicated === 0,
      drops_counted: oursDef.lost <= 0 && oursBurst.lost <= 0,
    },
    machine: machine(),
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
