// npm run bench -- gate-command
//
// Against a TCP peer (a separate process) that answers after 2 ms: 1000
// commands at 200/s, once through Node-RED's core `tcp request` node and once
// through rt-gate-command, each idle and with the flow engine blocked 200 ms
// every second by a busy function node, in real Node-RED processes. Each run
// first sends 200 unmeasured commands (the same for both nodes) so that JIT
// and first-connection costs are not counted as queueing.
// Measured: enqueue-to-wire latency: each command is stamped with the monotonic
// clock when the node under test receives it (Node-RED's onReceive messaging
// hook, preloaded by bench/lib/enqueue-hook), and the peer stamps its arrival
// (the read that completed the line) with the same clock. So both nodes are timed from the same instant, after
// the flow engine has delivered the message to them.
// Last line: {"ours_idle_p99_ms","ours_load_p99_ms","core_load_p99_ms","ours_lost", ...}
import { join } from 'node:path';

import { startNodeRed } from '../test/helpers/nodered-child';
import { type Peer, startPeer } from '../test/helpers/tcp-peer';
import { log, machine, percentile, result, round } from './lib/common';
import { threadHopMs } from './lib/thread-hop';

const N = Number(process.env.BENCH_N ?? 1000);
/** Commands sent first and not measured (the same for both nodes): JIT and socket warm-up. */
const WARM = Number(process.env.BENCH_WARMUP ?? 200);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Kind = 'ours' | 'core';

function flows(kind: Kind, port: number, load: boolean): object[] {
  const every = 1000 / RATE;
  const gen = {
    id: 'gen',
    z: 't',
    type: 'function',
    name: 'commands',
    outputs: 1,
    func: `
      let n = 0; const start = Date.now();
      const tick = () => {
        const due = Math.min(${N + WARM}, Math.floor((Date.now() - start) / ${every}) + 1);
        while (n < due) {
          n++;
          ${kind === 'ours' ? "node.send({ payload: { gate: 'G' + n, enq: 0 } });" : "node.send({ payload: 'OPEN G' + n + ' ENQ\\r\\n' });"}
        }
        if (n < ${N + WARM}) setTimeout(tick, 1);
      };
      tick();
      return null;`,
    wires: [['sink']],
  };
  const sink =
    kind === 'ours'
      ? { id: 'sink', z: 't', type: 'rt-gate-command', version: 1, endpoint: 'ep', queueLimit: 64, wires: [[]] }
      : { id: 'sink', z: 't', type: 'tcp request', server: '127.0.0.1', port: String(port), out: 'char', ret: 'string', splitc: '\\n', newline: '', trim: false, tls: '', wires: [[]] };
  const nodes: object[] = [
    { id: 't', type: 'tab', label: 'bench' },
    { id: 'go', z: 't', type: 'inject', once: true, onceDelay: 1, repeat: '', props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['gen']] },
    gen,
    sink,
  ];
  if (kind === 'ours') {
    nodes.push({ id: 'ep', type: 'rt-gate-endpoint', version: 1, host: '127.0.0.1', port, template: 'OPEN {gate} {enq}\\r\\n', ack: "^OK", timeout: 5000, inflight: 64, backoffMin: 50, backoffMax: 1000, keepAlive: true });
  }
  if (load) {
    nodes.push(
      { id: 'blk_t', z: 't', type: 'inject', once: true, onceDelay: 1.1, repeat: '1', props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['blk']] },
      { id: 'blk', z: 't', type: 'function', name: 'busy 200 ms', outputs: 1, func: 'const e = Date.now() + 200; while (Date.now() < e) {} return null;', wires: [[]] },
    );
  }
  return nodes;
}

async function run(kind: Kind, load: boolean, gateNice = -10): Promise<{ p50: number; p99: number; max: number; lost: number }> {
  // The peer stands for a controller with its own CPU: it runs at niceness -10 (when permitted) in every run.
  const peer: Peer = await startPeer('ok', 2, -10);
  const rt = await startNodeRed({
    settings: { logging: { console: { level: 'warn' } }, rtEdgeGateNice: gateNice },
    execArgv: ['-r', join(__dirname, 'lib', 'enqueue-hook.js')],
  });
  try {
    await rt.deploy(flows(kind, peer.port, load));
    const end = Date.now() + ((N + WARM) / RATE) * 1000 + 15_000;
    while (peer.lines.length < N + WARM && Date.now() < end) await sleep(100);
    await sleep(300);
    const lat = peer.lines
      .map((l) => {
        const m = /^OPEN G(\d+) (\d+)$/.exec(l.line);
        return m && Number(m[1]) > WARM ? (l.atUs - Number(m[2])) / 1000 : NaN;
      })
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), max: lat[lat.length - 1], lost: N - lat.length };
  } finally {
    await rt.kill('SIGTERM');
    rt.cleanup();
    await peer.stop();
  }
}

async function main(): Promise<void> {
  log(`gate-command: ${N} commands at ${RATE}/s after ${WARM} unmeasured warm-up commands, peer answers after 2 ms`);
  log(JSON.stringify(machine()));
  const r: Record<string, { p50: number; p99: number; max: number; lost: number }> = {};
  const runs: Array<[string, Kind, boolean, number]> = [
    ['core_idle', 'core', false, 0],
    ['core_load', 'core', true, 0],
    ['ours_idle', 'ours', false, -10],
    ['ours_load', 'ours', true, -10],
    // The gate worker asks for niceness -10 (setting rtEdgeGateNice; granted to
    // root or CAP_SYS_NICE). The same load with the thread left at 0, for hosts
    // where it is not granted:
    ['ours_load_nice0', 'ours', true, 0],
  ];
  for (const [k, kind, load, nice] of runs) {
    r[k] = await run(kind, load, nice);
    log(`${k.padEnd(15)} enqueue-to-wire p50 ${r[k].p50.toFixed(2)} ms, p99 ${r[k].p99.toFixed(2)} ms, max ${r[k].max.toFixed(1)} ms, lost ${r[k].lost}`);
  }
  log(`running as root: ${process.getuid?.() === 0} (the gate worker's niceness -10 needs root or CAP_SYS_NICE)`);
  // What a worker design cannot go below here: one main -> worker wake-up (ours also needs the peer's).
  const hop = await threadHopMs(1000, 5);
  log(`main -> idle worker postMessage hop: p50 ${percentile(hop, 0.5).toFixed(3)} ms, p99 ${percentile(hop, 0.99).toFixed(3)} ms`);
  result({
    bench: 'gate-command',
    ours_idle_p99_ms: round(r.ours_idle.p99, 2),
    ours_load_p99_ms: round(r.ours_load.p99, 2),
    core_load_p99_ms: round(r.core_load.p99, 2),
    ours_lost: r.ours_idle.lost + r.ours_load.lost + r.ours_load_nice0.lost,
    ours_load_nice0_p99_ms: round(r.ours_load_nice0.p99, 2),
    core_idle_p99_ms: round(r.core_idle.p99, 2),
    ours_load_max_ms: round(r.ours_load.max, 2),
    core_load_max_ms: round(r.core_load.max, 2),
    core_lost: r.core_idle.lost + r.core_load.lost,
    thread_hop_p99_ms: round(percentile(hop, 0.99), 3),
    machine: machine(),
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
