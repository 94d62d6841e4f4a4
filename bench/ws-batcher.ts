// npm run bench -- ws-batcher [--seconds N] [--mode worker|shared] [--delay MS] [--deflate BYTES] [--nice N]
//                              [--rss-pairs N] [--rss-warm S] [--shared-runtime 1]
//                              [--soak SECONDS [--soak-rate MSGS_PER_S] [--soak-deflate BYTES]]
// rt-ws-batcher against Node-RED's core `websocket out` (websocket-listener)
// in the same run, each scenario in a fresh Node-RED process with both sides'
// flows deployed (--shared-runtime 1: all in one process): 10 and 50 clients at 1k and 10k
// msgs/s of small JSON payloads, plus one stalled client (socket paused) in
// every scenario. The clients live in child processes, measured the same way
// for both sides: two "probe" clients alone in one process that does nothing
// but stamp each frame on arrival and decode it (their lag is not counted as
// ours), the other clients spread over processes of at most 10 that only count
// the messages they get (no JSON parsing), the stalled one in its own. Measured
// per scenario: delivery latency (generator stamp to arrival at a probe client)
// p50/p99, ours' enqueue-to-send p99 (rtedge_ws_latency_seconds, bucket
// bound), the flow engine's event-loop delay p99 (bench/lib/el-probe.ts), the
// main thread's CPU (/proc/<pid>/task/<pid>/stat), bytes read per message and
// client, RSS growth, and messages missing at a non-stalled client. The last
// line holds the 10k msgs/s x 50 clients figures.
// --soak: ours only, 50 clients + the stalled one, for SECONDS with
// compression off then on (threshold --soak-deflate, default 1024 B: every
// batch compressed), RSS sampled every 5 s; last line: the soak's figures.
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';

import { WebSocket } from 'ws';

import { startNodeRed, type ChildRuntime } from '../test/helpers/nodered-child';
import { freePort, sleep, tempDir } from '../test/helpers/util';
import { WS_NICE_DEFAULT } from '../nodes/rt-ws-batcher/backends';
import { DEFAULT_DEFLATE_THRESHOLD } from '../nodes/rt-ws-batcher/ws-config';
import { flag, log, machine, result, round } from './lib/common';

const SECONDS = Number(flag('seconds') ?? 10);
const MODE = flag('mode') === 'shared' ? 'shared' : 'worker';
/** Compression threshold of ours (bytes; 0 = off); default: the node's default. */
const DEFLATE = Number(flag('deflate') ?? DEFAULT_DEFLATE_THRESHOLD);
/** Ours' batch delay (ms); the node's default is one frame, 16 ms. */
const DELAY = Number(flag('delay') ?? 16);
/** Niceness of ours' worker thread (setting rtEdgeWsNice); default: the node's default. */
const NICE = Number(flag('nice') ?? WS_NICE_DEFAULT);
const SOAK = Number(flag('soak') ?? 0);
const SOAK_RATE = Number(flag('soak-rate') ?? 10_000);
const SOAK_DEFLATE = Number(flag('soak-deflate') ?? 1024);
const CLIENTS = (flag('clients') ?? '10,50').split(',').map(Number);
const RATES = (flag('rates') ?? '1000,10000').split(',').map(Number);
const SIDES = (flag('sides') ?? 'ours,core').split(',') as Array<'ours' | 'core'>;
/** --shared-runtime 1: every scenario in one runtime, one after the other (the default: a fresh runtime each). */
const SHARED_RT = flag('shared-runtime') === '1';
/** --stalled 0: no stalled client (to tell its share of the RSS growth). */
const STALLED = flag('stalled') !== '0';
/** Stalled-client RSS: seconds of load before the baseline reading; with/without pairs (ABBA order). */
const RSS_WARM_S = Number(flag('rss-warm') ?? 3);
const RSS_PAIRS = Number(flag('rss-pairs') ?? 2);
const CLK_TCK = 100;
/** Clients per counting process; probe clients (latency) per scenario. */
const PER_PROC = 10;
const PROBES = 2;

function flows(ourPort: number, deflate = DEFLATE): object[] {
  const gen = `
const cmd = msg.payload || {};
const st = context.get('st') || {};
if (st.timer) { clearInterval(st.timer); st.timer = null; }
if (msg.topic === 'start') {
  st.count = 0;
  const per = cmd.rate / 200; // every 5 ms
  let acc = 0;
  st.timer = setInterval(() => {
    acc += per;
    const k = Math.floor(acc);
    acc -= k;
    const out = [];
    for (let j = 0; j < k; j++) {
      const i = st.count++;
      out.push({ topic: 't' + (i % 8), payload: { i, v: Math.round(Math.random() * 1e4) / 100, t: Date.now() } });
    }
    if (out.length) node.send(cmd.out === 'core' ? [null, out] : [out, null]);
  }, 5);
}
context.set('st', st);
return [null, null, { res: msg.res, req: msg.req, payload: { count: st.count } }];`;
  return [
    { id: 'f1', type: 'tab', label: 'bench' },
    { id: 'start', z: 'f1', type: 'http in', url: '/gen/start', method: 'post', wires: [['setT']] },
    { id: 'setT', z: 'f1', type: 'change', rules: [{ t: 'set', p: 'topic', pt: 'msg', to: 'start', tot: 'str' }], wires: [['gen']] },
    { id: 'stop', z: 'f1', type: 'http in', url: '/gen/stop', method: 'post', wires: [['gen']] },
    { id: 'gen', z: 'f1', type: 'function', func: gen, outputs: 3, wires: [['ours'], ['core'], ['res']] },
    { id: 'res', z: 'f1', type: 'http response', wires: [] },
    { id: 'ours', z: 'f1', type: 'rt-ws-batcher', version: 1, mode: MODE, port: ourPort, host: '127.0.0.1', path: '/ours', batchSize: 100, delayMs: DELAY, capKb: 1024, graceS: 3600, ringBatches: 256, deflateThreshold: deflate, deflateConcurrency: 2, wires: [[]] },
    { id: 'wsl', type: 'websocket-listener', path: '/core', wholemsg: 'false' },
    { id: 'core', z: 'f1', type: 'websocket out', server: 'wsl', client: '', wires: [] },
  ];
}

interface ClientReport {
  /** Probe processes: latency histogram (0.1 ms bins) and its sample count. */
  hist: number[] | null;
  /** Ours' probes: generator stamp -> the node's enqueue stamp (`ts`), and `ts` -> arrival (same bins). */
  histFlow: number[] | null;
  histAfter: number[] | null;
  /** Probe processes: their own event-loop delay p99 (ms): the client side's lag. */
  elP99: number;
  samples: number;
  received: number[];
  bytes: number;
}

// ---- client processes (this file forked with RTEDGE_WSB_CLIENT) -------------

interface ClientRole {
  url: string;
  kind: 'ours' | 'core';
  n: number;
  /** probe: stamp every frame on arrival and decode it; count: only count messages; stalled: one paused socket. */
  role: 'probe' | 'count' | 'stalled';
}

const BIN_MS = 0.1;
const HIST_BINS = 200_000; // 0..20 s
const ITEM_MARK = Buffer.from('{"topic":');

/** Messages in one frame, without parsing it: core sends one per frame; ours one `{"topic":` per item. */
function countItems(data: Buffer, kind: 'ours' | 'core'): number {
  if (kind === 'core') return 1;
  if (data.indexOf('"t":"batch"') < 0) return 0; // hello, snapshot, other controls
  let n = 0;
  for (let at = data.indexOf(ITEM_MARK); at >= 0; at = data.indexOf(ITEM_MARK, at + ITEM_MARK.length)) n++;
  return n;
}

function clientProcess(r: ClientRole): void {
  const hist = r.role === 'probe' ? new Float64Array(HIST_BINS) : null;
  const histFlow = r.role === 'probe' && r.kind === 'ours' ? new Float64Array(HIST_BINS) : null;
  const histAfter = r.role === 'probe' && r.kind === 'ours' ? new Float64Array(HIST_BINS) : null;
  const el = monitorEventLoopDelay({ resolution: 1 });
  if (r.role === 'probe') el.enable();
  const bin = (ms: number): number => Math.min(HIST_BINS - 1, Math.max(0, Math.round(ms / BIN_MS)));
  let samples = 0;
  const received: number[] = new Array(r.n).fill(0);
  const sockets: WebSocket[] = [];
  const bytes0: number[] = [];
  let opened = 0;
  const now = (): number => performance.timeOrigin + performance.now();
  for (let k = 0; k < r.n; k++) {
    const ws = new WebSocket(r.url, { perMessageDeflate: true });
    sockets.push(ws);
    ws.on('open', () => {
      opened++;
      if (r.role === 'stalled') (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    });
    ws.on('error', () => undefined);
    if (r.role === 'stalled') continue;
    if (r.role === 'count') {
      ws.on('message', (data: Buffer) => {
        received[k] += countItems(data, r.kind);
      });
      continue;
    }
    ws.on('message', (data: Buffer) => {
      const at = now(); // first thing: the arrival time
      const m = JSON.parse(data.toString()) as { t?: unknown; items?: Array<{ payload: { t: number }; ts: number }> };
      const ts: number[] = [];
      if (r.kind === 'core') ts.push((m as unknown as { t: number }).t);
      else if (m.t === 'batch' && m.items)
        for (const it of m.items) {
          ts.push(it.payload.t);
          histFlow![bin(it.ts - it.payload.t)]++;
          histAfter![bin(at - it.ts)]++;
        }
      received[k] += ts.length;
      for (const t of ts) {
        hist![bin(at - t)]++;
        samples++;
      }
    });
  }
  const ready = setInterval(() => {
    if (opened >= sockets.length) {
      clearInterval(ready);
      process.send?.({ t: 'ready' });
    }
  }, 20);
  const bytesRead = (ws: WebSocket): number => (ws as unknown as { _socket?: { bytesRead: number } })._socket?.bytesRead ?? 0;
  process.on('message', (m: { t: string }) => {
    if (m.t === 'reset') {
      hist?.fill(0);
      histFlow?.fill(0);
      histAfter?.fill(0);
      el.reset();
      samples = 0;
      received.fill(0);
      sockets.forEach((ws, k) => (bytes0[k] = bytesRead(ws)));
      process.send?.({ t: 'reset-done' });
      return;
    }
    if (m.t !== 'report') return;
    let bytes = 0;
    sockets.forEach((ws, k) => (bytes += bytesRead(ws) - (bytes0[k] ?? 0)));
    // The histogram goes back sparse (bin, count pairs).
    const sparse = (h: Float64Array | null): number[] | null => {
      if (!h) return null;
      const o: number[] = [];
      for (let i = 0; i < HIST_BINS; i++) if (h[i] > 0) o.push(i, h[i]);
      return o;
    };
    const rep: ClientReport = { hist: sparse(hist), histFlow: sparse(histFlow), histAfter: sparse(histAfter), elP99: r.role === 'probe' ? el.percentile(99) / 1e6 : NaN, samples, received: r.role === 'stalled' ? [] : received, bytes: r.role === 'stalled' ? 0 : bytes };
    process.send?.({ t: 'report', ...rep });
    for (const ws of sockets) ws.terminate();
    setTimeout(() => process.exit(0), 100);
  });
}

/** A set of client processes for one scenario. */
class Clients {
  private readonly procs: Array<{ child: ChildProcess; role: ClientRole }> = [];
  constructor(url: string, kind: 'ours' | 'core', clients: number, stalled: boolean) {
    const roles: ClientRole[] = clients > 0 ? [{ url, kind, n: Math.min(PROBES, clients), role: 'probe' }] : [];
    let left = clients - (roles[0]?.n ?? 0);
    const nProcs = Math.ceil(left / PER_PROC);
    for (let p = 0; p < nProcs; p++) {
      const n = Math.ceil(left / (nProcs - p));
      roles.push({ url, kind, n, role: 'count' });
      left -= n;
    }
    if (stalled) roles.push({ url, kind, n: 1, role: 'stalled' });
    for (const role of roles) {
      const child = fork(__filename, [], { env: { ...process.env, RTEDGE_WSB_CLIENT: JSON.stringify(role) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      this.procs.push({ child, role });
    }
  }
  private all<T>(send: { t: string } | null, reply: string): Promise<T[]> {
    return Promise.all(
      this.procs.map(
        ({ child }) =>
          new Promise<T>((resolve) => {
            child.once('message', (m) => resolve(m as T));
            if (send) child.send(send);
          }),
      ),
    );
  }
  ready(): Promise<unknown[]> {
    return this.all(null, 'ready');
  }
  reset(): Promise<unknown[]> {
    return this.all({ t: 'reset' }, 'reset-done');
  }
  /** Every process's report (then they exit). */
  async report(): Promise<{ p50: number; p99: number; flowP99: number; afterP99: number; clientElP99: number; samples: number; received: number[]; bytes: number }> {
    const reps = await this.all<ClientReport>({ t: 'report' }, 'report');
    let samples = 0;
    let bytes = 0;
    let clientElP99 = NaN;
    const received: number[] = [];
    for (const r of reps) {
      samples += r.samples;
      bytes += r.bytes;
      received.push(...r.received);
      if (Number.isFinite(r.elP99)) clientElP99 = Number.isFinite(clientElP99) ? Math.max(clientElP99, r.elP99) : r.elP99;
    }
    /** q-quantile of the merged sparse histograms `key` (ms). */
    const pct = (key: 'hist' | 'histFlow' | 'histAfter', q: number): number => {
      const hist = new Map<number, number>();
      let total = 0;
      for (const r of reps) {
        const h = r[key];
        if (h)
          for (let i = 0; i < h.length; i += 2) {
            hist.set(h[i], (hist.get(h[i]) ?? 0) + h[i + 1]);
            total += h[i + 1];
          }
      }
      const bins = [...hist.entries()].sort((a, b) => a[0] - b[0]);
      const rank = Math.max(1, Math.ceil(q * total));
      let acc = 0;
      for (const [bin, n] of bins) {
        acc += n;
        if (acc >= rank) return bin * BIN_MS;
      }
      return NaN;
    };
    await Promise.all(this.procs.map(({ child }) => new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)))));
    return { p50: pct('hist', 0.5), p99: pct('hist', 0.99), flowP99: pct('histFlow', 0.99), afterP99: pct('histAfter', 0.99), clientElP99, samples, received, bytes };
  }
}

// ---- the runtime side --------------------------------------------------------

/** rtedge_ws_latency_seconds{node="ours"} buckets (cumulative counts by upper bound, s). */
async function latencyBuckets(rt: ChildRuntime): Promise<Map<string, number>> {
  const r = await rt.get('/metrics');
  const out = new Map<string, number>();
  for (const m of r.text.matchAll(/^rtedge_ws_latency_seconds_bucket\{[^}]*node="ours"[^}]*le="([^"]+)"[^}]*\} (\S+)$/gm)) out.set(m[1], Number(m[2]));
  return out;
}

/** p99 of the enqueue-to-send histogram between two scrapes: the upper bound of the bucket holding it (ms). */
function bucketP99Ms(a: Map<string, number>, b: Map<string, number>): number {
  const rows = [...b.entries()].map(([le, v]) => ({ le: le === '+Inf' ? Infinity : Number(le), n: v - (a.get(le) ?? 0) })).sort((x, y) => x.le - y.le);
  const total = rows.length ? rows[rows.length - 1].n : 0;
  if (total <= 0) return NaN;
  const rank = Math.ceil(0.99 * total);
  for (const r of rows) if (r.n >= rank) return r.le * 1000;
  return NaN;
}

/** CPU ticks of the whole process (every thread: the flow engine, our worker, libuv, GC). */
function procCpuTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

function mainCpuTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}

async function probe(rt: ChildRuntime, file: string): Promise<{ p99_ms: number; rss_mb: number }> {
  if (existsSync(file)) rmSync(file);
  rt.proc.kill('SIGWINCH');
  for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(20);
  await sleep(20);
  return JSON.parse(readFileSync(file, 'utf8')) as { p99_ms: number; rss_mb: number };
}

const rssMb = (pid: number): number => Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Node-RED's RSS after a forced full GC in every thread (el-probe collects the
 * main thread; mem-probe, preloaded too and inherited by the worker threads,
 * collects each worker within 200 ms): the median of 3 readings 300 ms apart, MB.
 */
async function settledRss(rt: ChildRuntime, probeFile: string): Promise<number> {
  await probe(rt, probeFile);
  await sleep(500);
  const xs: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(300);
    xs.push(rssMb(rt.proc.pid!));
  }
  return median(xs);
}

/**
 * One half of the stalled-client pair: `clients` reading clients and the
 * generator at `rate`; after RSS_WARM_S s of it, the baseline RSS; then (with
 * `stalled`) one client connects and never reads; SECONDS later, the RSS again.
 * Returns the growth over those SECONDS (MB).
 */
async function rssRun(rt: ChildRuntime, probeFile: string, side: 'ours' | 'core', url: string, clients: number, rate: number, stalled: boolean): Promise<{ growth: number; generated: number }> {
  const cl = new Clients(url, side, clients, false);
  await cl.ready();
  await sleep(300);
  await cl.reset();
  await rt.post('/gen/start', { rate, out: side });
  await sleep(RSS_WARM_S * 1000);
  const before = await settledRss(rt, probeFile);
  const st = stalled ? new Clients(url, side, 0, true) : null;
  if (st) await st.ready();
  await sleep(SECONDS * 1000);
  const after = await settledRss(rt, probeFile);
  const stop = JSON.parse((await rt.post('/gen/stop', {})).text) as { count: number };
  await sleep(1000);
  if (st) await st.report();
  await cl.report();
  await sleep(500);
  return { growth: after - before, generated: stop.count };
}

interface StalledRss {
  side: 'ours' | 'core';
  with_mb: number[];
  without_mb: number[];
  /** median(with) - median(without): the growth the stalled client causes, MB. */
  stalled_growth_mb: number;
}

/** RSS_PAIRS pairs with and without the stalled client, in ABBA order, same runtime, same rate and duration. */
async function stalledRss(rt: ChildRuntime, probeFile: string, side: 'ours' | 'core', url: string, clients: number, rate: number): Promise<StalledRss> {
  const w: number[] = [];
  const wo: number[] = [];
  for (let p = 0; p < RSS_PAIRS; p++) {
    for (const stalled of p % 2 === 0 ? [false, true] : [true, false]) {
      const r = await rssRun(rt, probeFile, side, url, clients, rate, stalled);
      (stalled ? w : wo).push(round(r.growth, 1));
      log(JSON.stringify({ stalled_rss: side, clients, rate, stalled, growth_mb: round(r.growth, 1), generated: r.generated }));
    }
  }
  return { side, with_mb: w, without_mb: wo, stalled_growth_mb: round(median(w) - median(wo), 1) };
}

interface Row {
  side: 'ours' | 'core';
  clients: number;
  rate: number;
  delivery_p50_ms: number;
  delivery_p99_ms: number;
  el_p99_ms: number;
  main_cpu_pct: number;
  /** The whole Node-RED process (all threads). */
  proc_cpu_pct: number;
  bytes_per_msg: number;
  rss_growth_mb: number;
  /** Ours: enqueue-to-send p99 (rtedge_ws_latency_seconds, the bucket bound holding it), ms. */
  enqueue_to_send_p99_ms: number;
  /** Ours: generator stamp -> the node's enqueue stamp p99 (the flow engine's hop), ms. */
  flow_hop_p99_ms: number;
  /** Ours: the node's enqueue stamp -> arrival at a probe p99 (hand-off, batching, fan-out, wire, client), ms. */
  after_enqueue_p99_ms: number;
  /** The probe clients' own event-loop delay p99 (their lag), ms. */
  client_el_p99_ms: number;
  lost: number;
  generated: number;
  samples: number;
}

async function scenario(rt: ChildRuntime, probeFile: string, side: 'ours' | 'core', url: string, clients: number, rate: number): Promise<Row> {
  const cl = new Clients(url, side, clients, STALLED);
  await cl.ready();
  await sleep(300);
  await cl.reset();
  const lat0 = side === 'ours' ? await latencyBuckets(rt) : null;
  const before = await probe(rt, probeFile);
  const cpu0 = mainCpuTicks(rt.proc.pid!);
  const pcpu0 = procCpuTicks(rt.proc.pid!);
  const t0 = Date.now();
  await rt.post('/gen/start', { rate, out: side });
  await sleep(SECONDS * 1000);
  const stop = JSON.parse((await rt.post('/gen/stop', {})).text) as { count: number };
  const wall = (Date.now() - t0) / 1000;
  const cpu1 = mainCpuTicks(rt.proc.pid!);
  const pcpu1 = procCpuTicks(rt.proc.pid!);
  const after = await probe(rt, probeFile);
  await sleep(2000); // let the clients drain
  const lat1 = side === 'ours' ? await latencyBuckets(rt) : null;
  const rep = await cl.report();
  const lost = Math.max(0, ...rep.received.map((r) => stop.count - r));
  const totalReceived = rep.received.reduce((a, b) => a + b, 0);
  const row: Row = {
    side,
    clients,
    rate,
    delivery_p50_ms: round(rep.p50, 2),
    delivery_p99_ms: round(rep.p99, 2),
    enqueue_to_send_p99_ms: lat0 && lat1 ? round(bucketP99Ms(lat0, lat1), 2) : NaN,
    flow_hop_p99_ms: round(rep.flowP99, 2),
    after_enqueue_p99_ms: round(rep.afterP99, 2),
    client_el_p99_ms: round(rep.clientElP99, 2),
    el_p99_ms: round(after.p99_ms, 2),
    main_cpu_pct: round(((cpu1 - cpu0) / CLK_TCK / wall) * 100, 1),
    proc_cpu_pct: round(((pcpu1 - pcpu0) / CLK_TCK / wall) * 100, 1),
    bytes_per_msg: round(rep.bytes / Math.max(1, totalReceived), 1),
    rss_growth_mb: round(after.rss_mb - before.rss_mb, 1),
    lost,
    generated: stop.count,
    samples: rep.samples,
  };
  log(JSON.stringify(row));
  await sleep(1000);
  return row;
}

/** A Node-RED runtime with the bench flows, and the URLs of both sides. */
interface Bed {
  rt: ChildRuntime;
  probeFile: string;
  ourUrl: string;
  coreUrl: string;
  close(): Promise<void>;
}

async function bed(): Promise<Bed> {
  const ourPort = await freePort();
  const tmp = tempDir('rtedge-wsb-');
  const probeFile = join(tmp.dir, 'el.json');
  const rt = await startNodeRed({
    flows: flows(ourPort),
    settings: { logging: { console: { level: 'warn' } }, rtEdgeWsNice: NICE },
    execArgv: ['--expose-gc', '-r', join(__dirname, 'lib', 'el-probe.js'), '-r', join(__dirname, 'lib', 'mem-probe.js')],
    env: { RTEDGE_EL_PROBE_OUT: probeFile, RTEDGE_MEM_PROBE_DIR: tmp.dir },
  });
  await sleep(1000);
  return {
    rt,
    probeFile,
    ourUrl: MODE === 'worker' ? `ws://127.0.0.1:${ourPort}/ours?format=json` : `ws://127.0.0.1:${rt.port}/ours`,
    coreUrl: `ws://127.0.0.1:${rt.port}/core`,
    close: async () => {
      await rt.kill('SIGTERM');
      rt.cleanup();
      tmp.cleanup();
    },
  };
}

async function main(): Promise<void> {
  log(JSON.stringify({ machine: machine(), loadavg: loadavg().map((x) => round(x, 2)), seconds: SECONDS, mode: MODE, deflate: DEFLATE, delay_ms: DELAY, nice: NICE, shared_runtime: SHARED_RT }));
  const rows: Row[] = [];
  const stalledRows: StalledRss[] = [];
  // Each scenario in a fresh runtime by default: what one side left behind (the core's buffers for its
  // stalled client, a grown heap) must not load the next scenario, whichever side that is.
  const shared = SHARED_RT ? await bed() : null;
  const run = async <T>(fn: (b: Bed) => Promise<T>): Promise<T> => {
    const b = shared ?? (await bed());
    try {
      return await fn(b);
    } finally {
      if (!shared) await b.close();
    }
  };
  try {
    for (const clients of CLIENTS) {
      for (const rate of RATES) {
        if (SIDES.includes('ours')) rows.push(await run((b) => scenario(b.rt, b.probeFile, 'ours', b.ourUrl, clients, rate)));
        if (SIDES.includes('core')) rows.push(await run((b) => scenario(b.rt, b.probeFile, 'core', b.coreUrl, clients, rate)));
      }
    }
    // The stalled client's own share of the RSS growth, at the biggest scenario.
    if (RSS_PAIRS > 0) {
      const clients = Math.max(...CLIENTS);
      const rate = Math.max(...RATES);
      for (const side of SIDES) stalledRows.push(await run((b) => stalledRss(b.rt, b.probeFile, side, side === 'ours' ? b.ourUrl : b.coreUrl, clients, rate)));
    }
  } finally {
    await shared?.close();
  }
  log(`load average at the end: ${loadavg().map((x) => round(x, 2)).join(' ')}`);
  log('side  clients  rate   deliv_p50  deliv_p99  flow_hop_p99  after_enq_p99  enq2send_p99  client_el_p99  el_p99  main_cpu%  proc_cpu%  bytes/msg  run_rss+MB  lost/generated  samples');
  for (const r of rows) log(`${r.side.padEnd(5)} ${String(r.clients).padStart(7)} ${String(r.rate).padStart(6)} ${String(r.delivery_p50_ms).padStart(10)} ${String(r.delivery_p99_ms).padStart(10)} ${String(r.flow_hop_p99_ms).padStart(13)} ${String(r.after_enqueue_p99_ms).padStart(14)} ${String(r.enqueue_to_send_p99_ms).padStart(13)} ${String(r.client_el_p99_ms).padStart(14)} ${String(r.el_p99_ms).padStart(7)} ${String(r.main_cpu_pct).padStart(10)} ${String(r.proc_cpu_pct).padStart(10)} ${String(r.bytes_per_msg).padStart(10)} ${String(r.rss_growth_mb).padStart(11)}  ${r.lost}/${r.generated}  ${r.samples}`);
  for (const s of stalledRows) log(`stalled-client RSS (${s.side}, ${Math.max(...CLIENTS)} clients, ${Math.max(...RATES)} msgs/s, ${SECONDS} s after ${RSS_WARM_S} s warm-up): with ${s.with_mb.join(', ')} MB, without ${s.without_mb.join(', ')} MB -> ${s.stalled_growth_mb} MB`);
  // The 10k msgs/s x 50 clients figures (or the biggest scenario run, with --clients/--rates).
  const pick = (side: 'ours' | 'core'): Row => rows.filter((r) => r.side === side).sort((a, b) => a.clients * a.rate - b.clients * b.rate).pop()!;
  const o = pick('ours') ?? ({} as Row);
  const c = pick('core') ?? ({} as Row);
  result({
    ours_delivery_p99_ms: o.delivery_p99_ms,
    core_delivery_p99_ms: c.delivery_p99_ms,
    ours_el_p99_ms: o.el_p99_ms,
    core_el_p99_ms: c.el_p99_ms,
    ours_main_cpu_pct: o.main_cpu_pct,
    core_main_cpu_pct: c.main_cpu_pct,
    ours_bytes_per_msg: o.bytes_per_msg,
    core_bytes_per_msg: c.bytes_per_msg,
    // null with --rss-pairs 0 (the key stays: the last line always has the keys)
    ours_stalled_rss_growth_mb: stalledRows.find((s) => s.side === 'ours')?.stalled_growth_mb ?? null,
    core_stalled_rss_growth_mb: stalledRows.find((s) => s.side === 'core')?.stalled_growth_mb ?? null,
    ours_lost: Math.max(...rows.filter((r) => r.side === 'ours').map((r) => r.lost)),
  });
}

/**
 * --soak: ours only (the configured mode), 50 clients + one stalled, at
 * SOAK_RATE msgs/s for SOAK seconds, with compression off and then on
 * (threshold SOAK_DEFLATE, every batch above it compressed), each in a fresh
 * runtime; the runtime's RSS sampled every 5 s. Last line: both runs' figures.
 */
async function soak(): Promise<void> {
  log(JSON.stringify({ machine: machine(), loadavg: loadavg().map((x) => round(x, 2)), soak_s: SOAK, rate: SOAK_RATE, mode: MODE, deflate_on: SOAK_DEFLATE, delay_ms: DELAY }));
  const out: Record<string, number> = { soak_s: SOAK, rate: SOAK_RATE };
  for (const [name, deflate] of [['off', 0], ['on', SOAK_DEFLATE]] as const) {
    const ourPort = await freePort();
    const tmp = tempDir('rtedge-wsb-');
    const probeFile = join(tmp.dir, 'el.json');
    const rt = await startNodeRed({
      flows: flows(ourPort, deflate),
      settings: { logging: { console: { level: 'warn' } }, rtEdgeWsNice: NICE },
      execArgv: ['--expose-gc', '-r', join(__dirname, 'lib', 'el-probe.js')],
      env: { RTEDGE_EL_PROBE_OUT: probeFile },
    });
    try {
      await sleep(1000);
      const url = MODE === 'worker' ? `ws://127.0.0.1:${ourPort}/ours?format=json` : `ws://127.0.0.1:${rt.port}/ours`;
      const cl = new Clients(url, 'ours', 50, true);
      await cl.ready();
      await sleep(300);
      await cl.reset();
      const before = await probe(rt, probeFile);
      await rt.post('/gen/start', { rate: SOAK_RATE, out: 'ours' });
      const rss: number[] = [];
      const end = Date.now() + SOAK * 1000;
      while (Date.now() < end) {
        await sleep(Math.min(5000, Math.max(0, end - Date.now())));
        rss.push(Number(readFileSync(`/proc/${rt.proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)![1]) / 1024);
      }
      const stop = JSON.parse((await rt.post('/gen/stop', {})).text) as { count: number };
      const after = await probe(rt, probeFile);
      await sleep(2000);
      const rep = await cl.report();
      const lost = Math.max(0, ...rep.received.map((r) => stop.count - r));
      const total = rep.received.reduce((a, b) => a + b, 0);
      const row = {
        compression: name,
        rss_start_mb: round(before.rss_mb, 1),
        rss_max_mb: round(Math.max(...rss), 1),
        rss_end_mb: round(after.rss_mb, 1),
        delivery_p99_ms: round(rep.p99, 2),
        bytes_per_msg: round(rep.bytes / Math.max(1, total), 1),
        lost,
        generated: stop.count,
      };
      log(JSON.stringify(row));
      out[`rss_max_mb_${name}`] = row.rss_max_mb;
      out[`rss_end_mb_${name}`] = row.rss_end_mb;
      out[`delivery_p99_ms_${name}`] = row.delivery_p99_ms;
      out[`bytes_per_msg_${name}`] = row.bytes_per_msg;
      out[`lost_${name}`] = lost;
    } finally {
      await rt.kill('SIGTERM');
      rt.cleanup();
      tmp.cleanup();
    }
  }
  out.rss_on_vs_off = round(out.rss_max_mb_on / out.rss_max_mb_off, 3);
  result(out);
}

const role = process.env.RTEDGE_WSB_CLIENT;
if (role) clientProcess(JSON.parse(role) as ClientRole);
else
  (SOAK > 0 ? soak() : main()).catch((err) => {
    log(String(err?.stack ?? err));
    process.exit(1);
  });
