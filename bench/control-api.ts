// npm run bench -- control-api [--minutes M | --seconds S] [--probe-seconds P] [--max-rate-x N]
// npm run bench -- control-api --floor-only X [--probe-seconds P]
//
// The validation plan's four workloads together (monitoring 40 req/s, control
// 20, logging 4, GPIO 6: 70 req/s at rate-x 1), open model, against
// flows/control-api.json in one Node-RED process with httpNodeAuth (the
// generator: bench/lib/control-load.ts). First the plan's mix at rate-x 1 for
// 2 minutes (x1_pass: every SLO held). Then the search for the highest rate-x
// at which every SLO still holds for 2 minutes:
//   1. probes of 30 s (--probe-seconds): doubling from 2 until a breach, then
//      bisection to a whole rate-x (a probe only steers the search);
//   2. confirmation of the best probe for the full 2 minutes; a breach there
//      continues the bisection with full-length runs between the highest
//      confirmed rate-x (1 once x1 passed) and the breached one.
// max_rate_x is always a rate-x that held for the full length. --minutes /
// --seconds shorten the full-length steps (development only: the figures are
// for 2 minutes).
//
// The generator runs on the same machine as Node-RED (2 shared cores here):
// the runtime's CPU is shared with the client, and each step prints the
// generator's own lateness and event-loop delay (charged to the latency, never
// hidden; flagged when it lagged) and the machine's load average (figures
// taken at a load average above the core count are not comparable with an
// idle machine's, and the output says so).
// No core node does the plant's job (a controller loop in a worker with
// reads served from shared memory). What the core does do is the HTTP path,
// so the run ends with the core-only floor: the same routes answered by core
// nodes alone (http in -> change -> http response, same settings, a fresh
// runtime) at the rate found, with the runtime's CPU per request for both
// (from /proc; it shows how much of the cost is Node-RED's own).
//
// --floor-only X: only the core-only floor, at rate-x X (P seconds, after 10 s of
// warm-up): can Node-RED's own HTTP path hold the SLOs at that rate on this
// machine at all? Last line: {"floor_rate_x","floor_pass","floor_rps",
// "floor_cpu_us_per_req","reads_p99_ms","writes_p99_ms","log_p99_ms","gpio_p99_ms"}.
//
// Last line: {"x1_pass","max_rate_x","max_rps","reads_p99_ms","writes_p99_ms","log_p99_ms","gpio_p99_ms","non2xx_pct"}
// with the p99s and the non-2xx rate (all groups) at max_rate_x (at rate-x 1 when it breached).
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { flag, log, machine, result } from './lib/common';
import { coreFloorFlows, formatTable, GROUPS, recordHealth, type RunResult, runLoad, startControlRuntime, summary, writeResults } from './lib/control-load';

const SECONDS = flag('seconds') !== undefined ? Number(flag('seconds')) : Number(flag('minutes') ?? 2) * 60;
const PROBE_SECONDS = Math.min(SECONDS, Number(flag('probe-seconds') ?? 30));
const MAX_X = Number(flag('max-rate-x') ?? 64);
const FLOOR_ONLY = flag('floor-only') !== undefined ? Number(flag('floor-only')) : null;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const out = join(tmpdir(), `rtedge-bench-control-api-${Date.now()}`);
  const cores = cpus().length;
  log(`control-api: ${SECONDS} s per full step, ${PROBE_SECONDS} s per probe; machine ${JSON.stringify(machine())}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; results and health reports in ${out}`);
  const c = await startControlRuntime();
  const stopHealth = recordHealth(c.target, out);
  const runs: Array<RunResult & { kind: 'full' | 'probe' | 'core-floor' }> = [];
  let first = true;
  const step = async (x: number, kind: 'full' | 'probe'): Promise<RunResult> => {
    const seconds = kind === 'full' ? SECONDS : PROBE_SECONDS;
    // The first step starts with 10 s of uncounted load: a runtime that just started is still compiling its hot paths.
    const r = await runLoad(c.target, x, seconds, { warmupS: first ? 10 : Math.min(5, seconds / 10), serverPid: c.proc.pid });
    first = false;
    runs.push({ ...r, kind });
    const busy = Math.max(r.loadBefore, r.loadAfter) > cores ? ` (above the ${cores} cores: other jobs share the CPU, figures not comparable with an idle machine's)` : '';
    log(`[${kind}] ${formatTable(r)}\nload average before ${r.loadBefore}, after ${r.loadAfter}${busy}\n`);
    // let a breached run's backlog drain before the next step
    await sleep(r.pass ? 3000 : 10_000);
    return r;
  };
  try {
    const x1 = await step(1, 'full');
    let best: RunResult | null = x1.pass ? x1 : null;
    if (x1.pass) {
      // 1. short probes: doubling, then bisection
      let lo = 1;
      let hi = Infinity;
      for (let x = 2; x <= MAX_X; x *= 2) {
        if ((await step(x, 'probe')).pass) lo = x;
        else {
          hi = x;
          break;
        }
      }
      if (hi === Infinity) hi = lo + 1;
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if ((await step(mid, 'probe')).pass) lo = mid;
        else hi = mid;
      }
      // 2. confirmation at full length; on a breach, bisection with full-length runs below it
      // (the first rate-x that holds there is taken: a lower bound, each further full step costs 2 minutes)
      let cand = lo;
      while (cand > 1) {
        const r = await step(cand, 'full');
        if (r.pass) {
          best = r;
          break;
        }
        cand = Math.floor((1 + cand) / 2);
      }
    }
    const health = stopHealth();
    // Node-RED's own floor at the same rate: the same routes answered by core nodes alone, in a fresh runtime
    // with the same settings (ours stopped first, so the two never share the CPU).
    const at0 = best ?? x1;
    await c.rt.kill('SIGTERM');
    const floorRt = await startControlRuntime({ flows: coreFloorFlows() });
    let floor: RunResult;
    try {
      floor = await runLoad(floorRt.target, at0.rateX, PROBE_SECONDS, { warmupS: 10, serverPid: floorRt.proc.pid });
    } finally {
      await floorRt.rt.kill('SIGTERM');
      floorRt.rt.cleanup();
    }
    log(
      `core-only floor (http in -> change -> http response, same settings) at rate-x ${floor.rateX} for ${PROBE_SECONDS} s: ` +
        `runtime CPU ${floor.serverCpuPct} % of a core, ${floor.serverCpuUsPerReq} µs per request (the control API flow: ${at0.serverCpuPct} %, ${at0.serverCpuUsPerReq} µs); ` +
        `reads p50 / p99 ${floor.groups.reads.p50} / ${floor.groups.reads.p99} ms (the control API: ${at0.groups.reads.p50} / ${at0.groups.reads.p99} ms); load average ${floor.loadBefore}`,
    );
    runs.push({ ...floor, kind: 'core-floor' });
    writeResults(out, 'results.json', { machine: machine(), seconds: SECONDS, probe_seconds: PROBE_SECONDS, runs: runs.map((r) => ({ kind: r.kind, ...summary(r) })), health_last: health });
    const at = best ?? x1;
    const sent = GROUPS.reduce((a, g) => a + at.groups[g].sent, 0);
    const non2xx = GROUPS.reduce((a, g) => a + at.groups[g].non2xx, 0);
    const lagged = runs.filter((r) => r.genLagged).map((r) => `x${r.rateX}`);
    log(
      `runs: ${runs.map((r) => `x${r.rateX} ${r.kind} ${r.pass ? 'ok' : 'breach'} (load ${r.loadBefore})`).join(', ')}; health reports: ${join(out, 'health.jsonl')}` +
        (lagged.length ? `\nthe generator itself lagged in: ${lagged.join(', ')} (its lateness is charged to the latency)` : ''),
    );
    result({
      x1_pass: x1.pass,
      max_rate_x: best ? best.rateX : 0,
      max_rps: best ? best.totalRps : 0,
      reads_p99_ms: at.groups.reads.p99,
      writes_p99_ms: at.groups.writes.p99,
      log_p99_ms: at.groups.log.p99,
      gpio_p99_ms: at.groups.gpio.p99,
      non2xx_pct: sent ? Math.round((10000 * non2xx) / sent) / 100 : 0,
    });
  } finally {
    await c.rt.kill('SIGTERM');
    c.rt.cleanup();
  }
}

/** The core-only floor alone at one rate-x: Node-RED's own HTTP path, no node of ours. */
async function floorOnly(x: number): Promise<void> {
  log(`control-api core-only floor at rate-x ${x}, ${PROBE_SECONDS} s; machine ${JSON.stringify(machine())}; load average ${loadavg().map((v) => v.toFixed(1)).join(' ')}`);
  const f = await startControlRuntime({ flows: coreFloorFlows() });
  try {
    const r = await runLoad(f.target, x, PROBE_SECONDS, { warmupS: 10, serverPid: f.proc.pid });
    log(`[core-floor] ${formatTable(r)}\nload average before ${r.loadBefore}, after ${r.loadAfter}; runtime CPU ${r.serverCpuPct} % of a core, ${r.serverCpuUsPerReq} µs per request`);
    result({
      floor_rate_x: x,
      floor_pass: r.pass,
      floor_rps: r.totalRps,
      floor_cpu_us_per_req: r.serverCpuUsPerReq,
      reads_p99_ms: r.groups.reads.p99,
      writes_p99_ms: r.groups.writes.p99,
      log_p99_ms: r.groups.log.p99,
      gpio_p99_ms: r.groups.gpio.p99,
    });
  } finally {
    await f.rt.kill('SIGTERM');
    f.rt.cleanup();
  }
}

(FLOOR_ONLY !== null ? floorOnly(FLOOR_ONLY) : main()).then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
