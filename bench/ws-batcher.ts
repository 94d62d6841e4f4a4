// npm run bench -- ws-batcher [--seconds N] [--mode worker|shared]
// rt-ws-batcher against Node-RED's core `websocket out` (websocket-listener)
// in the same Node-RED process, same run: 10 and 50 clients at 1k and 10k
// msgs/s of small JSON payloads, plus one stalled client (socket paused) in
// every scenario. The clients live in a child process (their CPU is not the
// runtime's). Measured per scenario: delivery latency (generator stamp to
// client receive) p50/p99, the flow engine's event-loop delay p99
// (bench/lib/el-probe.ts), the main thread's CPU (/proc/<pid>/task/<pid>/stat),
// bytes read per message and client, RSS growth, and messages missing at a
// non-stalled client. The last line holds the 10k msgs/s x 50 clients figures.
import { fork } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { startNodeRed, type ChildRuntime } from '../test/helpers/nodered-child';
import { freePort, sleep, tempDir } from '../test/helpers/util';
import { DEFAULT_DEFLATE_THRESHOLD } from '../nodes/rt-ws-batcher/ws-config';
import { flag, log, machine, result, round } from './lib/common';

const SECONDS = Number(flag('seconds') ?? 10);
const MODE = flag('mode') === 'shared' ? 'shared' : 'worker';
/** Compression threshold of ours (bytes; 0 = off); default: the node's default. */
const DEFLATE = Number(flag('deflate') ?? DEFAULT_DEFLATE_THRESHOLD);
const CLK_TCK = 100;

function flows(ourPort: number): object[] {
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
    { id: 'ours', z: 'f1', type: 'rt-ws-batcher', version: 1, mode: MODE, port: ourPort, host: '127.0.0.1', path: '/ours', batchSize: 100, delayMs: 16, capKb: 1024, graceS: 3600, ringBatches: 256, deflateThreshold: DEFLATE, deflateConcurrency: 2, wires: [[]] },
    { id: 'wsl', type: 'websocket-listener', path: '/core', wholemsg: 'false' },
    { id: 'core', z: 'f1', type: 'websocket out', server: 'wsl', client: '', wires: [] },
  ];
}

interface ClientReport {
  p50: number;
  p99: number;
  samples: number;
  received: number[];
  bytes: number;
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

interface Row {
  side: 'ours' | 'core';
  clients: number;
  rate: number;
  delivery_p50_ms: number;
  delivery_p99_ms: number;
  el_p99_ms: number;
  main_cpu_pct: number;
  bytes_per_msg: number;
  rss_growth_mb: number;
  lost: number;
  generated: number;
}

async function scenario(rt: ChildRuntime, probeFile: string, side: 'ours' | 'core', url: string, clients: number, rate: number): Promise<Row> {
  const child = fork(join(__dirname, 'lib', 'ws-bench-client.js'), [url, side, String(clients), '1'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const msg = (t: string): Promise<Record<string, unknown>> => new Promise((resolve) => child.once('message', (m) => resolve(m as Record<string, unknown>)));
  await msg('ready');
  await sleep(300);
  child.send({ t: 'reset' });
  await msg('reset-done');
  const before = await probe(rt, probeFile);
  const cpu0 = mainCpuTicks(rt.proc.pid!);
  const t0 = Date.now();
  await rt.post('/gen/start', { rate, out: side });
  await sleep(SECONDS * 1000);
  const stop = JSON.parse((await rt.post('/gen/stop', {})).text) as { count: number };
  const wall = (Date.now() - t0) / 1000;
  const cpu1 = mainCpuTicks(rt.proc.pid!);
  const after = await probe(rt, probeFile);
  await sleep(2000); // let the clients drain
  child.send({ t: 'report' });
  const rep = (await msg('report')) as unknown as ClientReport;
  const lost = Math.max(0, ...rep.received.map((r) => stop.count - r));
  const totalReceived = rep.received.reduce((a, b) => a + b, 0);
  const row: Row = {
    side,
    clients,
    rate,
    delivery_p50_ms: round(rep.p50, 2),
    delivery_p99_ms: round(rep.p99, 2),
    el_p99_ms: round(after.p99_ms, 2),
    main_cpu_pct: round(((cpu1 - cpu0) / CLK_TCK / wall) * 100, 1),
    bytes_per_msg: round(rep.bytes / Math.max(1, totalReceived), 1),
    rss_growth_mb: round(after.rss_mb - before.rss_mb, 1),
    lost,
    generated: stop.count,
  };
  log(JSON.stringify(row));
  await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  await sleep(1000);
  return row;
}

async function main(): Promise<void> {
  log(JSON.stringify({ machine: machine(), seconds: SECONDS, mode: MODE, deflate: DEFLATE }));
  const ourPort = await freePort();
  const tmp = tempDir('rtedge-wsb-');
  const probeFile = join(tmp.dir, 'el.json');
  const rt = await startNodeRed({
    flows: flows(ourPort),
    settings: { logging: { console: { level: 'warn' } } },
    execArgv: ['--expose-gc', '-r', join(__dirname, 'lib', 'el-probe.js')],
    env: { RTEDGE_EL_PROBE_OUT: probeFile },
  });
  const rows: Row[] = [];
  try {
    await sleep(1000);
    for (const clients of [10, 50]) {
      for (const rate of [1000, 10_000]) {
        rows.push(await scenario(rt, probeFile, 'ours', MODE === 'worker' ? `ws://127.0.0.1:${ourPort}/ours?format=json` : `ws://127.0.0.1:${rt.port}/ours`, clients, rate));
        rows.push(await scenario(rt, probeFile, 'core', `ws://127.0.0.1:${rt.port}/core`, clients, rate));
      }
    }
  } finally {
    await rt.kill('SIGTERM');
    rt.cleanup();
    tmp.cleanup();
  }
  log('side  clients  rate   deliv_p50  deliv_p99  el_p99  main_cpu%  bytes/msg  rss+MB  lost/generated');
  for (const r of rows) log(`${r.side.padEnd(5)} ${String(r.clients).padStart(7)} ${String(r.rate).padStart(6)} ${String(r.delivery_p50_ms).padStart(10)} ${String(r.delivery_p99_ms).padStart(10)} ${String(r.el_p99_ms).padStart(7)} ${String(r.main_cpu_pct).padStart(10)} ${String(r.bytes_per_msg).padStart(10)} ${String(r.rss_growth_mb).padStart(7)}  ${r.lost}/${r.generated}`);
  const pick = (side: 'ours' | 'core'): Row => rows.find((r) => r.side === side && r.clients === 50 && r.rate === 10_000)!;
  const o = pick('ours');
  const c = pick('core');
  result({
    ours_delivery_p99_ms: o.delivery_p99_ms,
    core_delivery_p99_ms: c.delivery_p99_ms,
    ours_el_p99_ms: o.el_p99_ms,
    core_el_p99_ms: c.el_p99_ms,
    ours_main_cpu_pct: o.main_cpu_pct,
    core_main_cpu_pct: c.main_cpu_pct,
    ours_bytes_per_msg: o.bytes_per_msg,
    core_bytes_per_msg: c.bytes_per_msg,
    ours_stalled_rss_growth_mb: o.rss_growth_mb,
    core_stalled_rss_growth_mb: c.rss_growth_mb,
    ours_lost: Math.max(...rows.filter((r) => r.side === 'ours').map((r) => r.lost)),
  });
}

main().catch((err) => {
  log(String(err?.stack ?? err));
  process.exit(1);
});
