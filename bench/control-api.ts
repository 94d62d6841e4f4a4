// npm run bench -- control-api [--minutes M | --seconds S] [--max-rate-x N]
//
// The validation plan's four workloads together (monitoring 40 req/s, control
// 20, logging 4, GPIO 6: 70 req/s at rate-x 1), open model, against
// flows/control-api.json in one Node-RED process with httpNodeAuth (the
// generator: bench/lib/control-load.ts). First the plan's mix at rate-x 1 for
// 2 minutes (x1_pass: every SLO held), then a search for the highest rate-x
// at which every SLO still holds for 2 minutes: doubling from 2 until a
// breach, then bisection to a whole rate-x. --minutes/--seconds shorten every
// step (development only: the figures are for 2 minutes).
//
// The generator runs on the same machine as Node-RED (2 shared cores here):
// the runtime's CPU is shared with the client, and the generator's own
// lateness is printed per step (it is charged to the latency, never hidden).
// No core node does the plant's job (a controller loop in a worker with
// reads served from shared memory), so no core baseline runs alongside; the
// per-step table shows where the time goes per endpoint group.
//
// Last line: {"x1_pass","max_rate_x","max_rps","reads_p99_ms","writes_p99_ms","log_p99_ms","gpio_p99_ms","non2xx_pct"}
// with the p99s and the non-2xx rate (all groups) at max_rate_x.
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { flag, log, machine, result } from './lib/common';
import { formatTable, GROUPS, recordHealth, type RunResult, runLoad, startControlRuntime, summary, writeResults } from './lib/control-load';

const SECONDS = flag('seconds') !== undefined ? Number(flag('seconds')) : Number(flag('minutes') ?? 2) * 60;
const MAX_X = Number(flag('max-rate-x') ?? 64);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const out = join(tmpdir(), `rtedge-bench-control-api-${Date.now()}`);
  log(`control-api: ${SECONDS} s per step; machine ${JSON.stringify(machine())}; results and health reports in ${out}`);
  const c = await startControlRuntime();
  const stopHealth = recordHealth(c.target, out);
  const runs: RunResult[] = [];
  const step = async (x: number): Promise<RunResult> => {
    const before = loadavg()[0];
    const r = await runLoad(c.target, x, SECONDS, { warmupS: Math.min(5, SECONDS / 10) });
    runs.push(r);
    // The machine's load (1-minute average) before and after the step: a shared machine's other work shows here.
    log(`${formatTable(r)}\nload average before ${before.toFixed(1)}, after ${loadavg()[0].toFixed(1)}\n`);
    // let a breached run's backlog drain before the next step
    await sleep(r.pass ? 3000 : 10_000);
    return r;
  };
  try {
    const x1 = await step(1);
    let best: RunResult | null = x1.pass ? x1 : null;
    let lo = x1.pass ? 1 : 0;
    let hi = Infinity;
    if (x1.pass) {
      for (let x = 2; x <= MAX_X; x *= 2) {
        const r = await step(x);
        if (r.pass) {
          best = r;
          lo = x;
        } else {
          hi = x;
          break;
        }
      }
      if (hi === Infinity) hi = lo;
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        const r = await step(mid);
        if (r.pass) {
          best = r;
          lo = mid;
        } else hi = mid;
      }
    }
    const health = stopHealth();
    writeResults(out, 'results.json', { machine: machine(), seconds: SECONDS, runs: runs.map(summary), health_last: health });
    const at = best ?? x1;
    const sent = GROUPS.reduce((a, g) => a + at.groups[g].sent, 0);
    const non2xx = GROUPS.reduce((a, g) => a + at.groups[g].non2xx, 0);
    log(`runs: ${runs.map((r) => `x${r.rateX} ${r.pass ? 'ok' : 'breach'}`).join(', ')}; health reports: ${join(out, 'health.jsonl')}`);
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

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
