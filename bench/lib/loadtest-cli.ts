// npm run loadtest [-- --rate-x N] [--minutes M | --seconds S] [--url http://host:port --user U --pass P] [--cpu-prof] [--out DIR]
//                  [--admin-root PATH (the started runtime's httpAdminRoot, default /admin)] [--max-sockets N (default 64)]
//                  [--core-floor (the same routes answered by core nodes alone: Node-RED's own cost per request)]
//                  [--flows FILE (your own variant of flows/control-api.json, e.g. without the dashboard: what a part costs)]
//
// The validation plan's four workloads together (monitoring 40 req/s, control
// 20, logging 4, GPIO 6, times --rate-x), open model, against
// flows/control-api.json in a Node-RED process this script starts (with
// httpNodeAuth; the generator sends credentials), or against a runtime you
// run (--url, with --user/--pass for its httpNodeAuth). Prints the per-group
// table, then one JSON line; exits 1 when an SLO is breached. While it runs,
// the perf monitor's health report (GET /api/health) goes to
// <out>/health.jsonl beside <out>/results.json. --cpu-prof runs the started
// Node-RED under `node --cpu-prof` and prints its top functions afterwards
// (the .cpuprofile stays in <out>/ for Chrome DevTools).
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { flag, machine } from './common';
import {
  coreFloorFlows,
  readFlowsFile,
  formatTable,
  mainCpuProfile,
  recordHealth,
  runLoad,
  startControlRuntime,
  summarizeCpuProfile,
  summary,
  type Target,
  writeResults,
} from './control-load';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const rateX = Number(flag('rate-x') ?? 1);
  const seconds = flag('seconds') !== undefined ? Number(flag('seconds')) : Number(flag('minutes') ?? 10) * 60;
  const url = flag('url');
  const cpuProf = argv.includes('--cpu-prof');
  // --core-floor: the same routes answered by core nodes alone (bench/lib/control-load.ts coreFloorFlows)
  const coreFloor = argv.includes('--core-floor');
  const flowsFile = flag('flows');
  const out = flag('out') ?? join(tmpdir(), `rtedge-loadtest-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  if (!(rateX > 0) || !(seconds > 0) || (coreFloor && flowsFile !== undefined) || (url !== undefined && (coreFloor || flowsFile !== undefined))) {
    if (coreFloor && flowsFile !== undefined) console.error('--core-floor and --flows both choose the flow to start: give one');
    if (url !== undefined && (coreFloor || flowsFile !== undefined)) console.error('--url runs against your own runtime: --core-floor and --flows only apply to the one this script starts');
    console.error('usage: npm run loadtest -- [--rate-x N] [--minutes M | --seconds S] [--url URL --user U --pass P] [--cpu-prof] [--out DIR] [--admin-root PATH] [--max-sockets N] [--core-floor | --flows FILE]');
    process.exit(2);
  }
  let target: Target;
  let stopRuntime: (() => Promise<void>) | null = null;
  let serverPid: number | undefined;
  if (url) {
    const u = new URL(url);
    const user = flag('user');
    target = { host: u.hostname, port: Number(u.port || 80), auth: user ? { user, pass: flag('pass') ?? '' } : null };
  } else {
    let flows: object[] | undefined;
    try {
      flows = coreFloor ? coreFloorFlows() : flowsFile !== undefined ? readFlowsFile(flowsFile) : undefined;
    } catch (err) {
      console.error((err as Error).message);
      process.exit(2);
    }
    const c = await startControlRuntime({ cpuProfDir: cpuProf ? out : undefined, adminRoot: flag('admin-root'), flows });
    target = c.target;
    serverPid = c.proc.pid;
    stopRuntime = async () => {
      // SIGINT: Node-RED stops its flows and exits normally, so --cpu-prof writes the profile.
      await c.rt.kill('SIGINT', 30_000);
      c.rt.cleanup();
    };
    console.error(`Node-RED with ${coreFloor ? 'the core-only floor flow' : (flowsFile ?? 'flows/control-api.json')} at http://127.0.0.1:${c.target.port} (pid ${c.proc.pid}); results in ${out}`);
  }
  const stopHealth = recordHealth(target, out);
  console.error(`running the four workloads at rate-x ${rateX} for ${seconds} s ...`);
  const maxSockets = flag('max-sockets') !== undefined ? Number(flag('max-sockets')) : undefined;
  const r = await runLoad(target, rateX, seconds, { warmupS: Math.min(5, seconds / 10), maxSockets, serverPid });
  const health = stopHealth();
  let cpu: string[] = [];
  if (stopRuntime) await stopRuntime();
  if (cpuProf) {
    const prof = mainCpuProfile(out);
    if (prof) {
      cpu = summarizeCpuProfile(prof);
      console.log(`\nCPU profile of the runtime's flow engine (main thread): ${prof} (open in Chrome DevTools > Performance, or VS Code)\nself time, top functions:\n${cpu.join('\n')}\n`);
    } else console.log('\nno CPU profile was written (did the runtime exit normally?)');
  }
  const res = { loadtest: 'control-api', machine: machine(), ...summary(r), health_last: health, results_dir: out };
  const file = writeResults(out, 'results.json', { ...res, cpu_top: cpu });
  console.log(formatTable(r));
  console.log(`results: ${file}; perf monitor health reports: ${join(out, 'health.jsonl')}`);
  console.log(JSON.stringify(res));
  process.exit(r.pass ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(2);
});
