// npm run bench -- perf-monitor-overhead
//
// What rt-perf-monitor costs the flows it watches. A closed loop of messages
// (256 in flight) runs through a chain of 10 core `change` nodes and back into
// a counting function node (11 hops per lap), with no monitor deployed
// ("plain"), with the monitor in its default mode (messaging hooks on for a
// 1 s window every 10 s) and in continuous mode (hooks always on).
//
// This machine is shared (2 cores, other jobs running): one configuration after
// another, the rate of the very same flow swung by 30 % from one 10 s run to the
// next. So the three configurations run at the same time, in three Node-RED
// processes, and see the same interference; each round rotates which process
// runs which configuration; a measurement lasts one whole sampling period (10 s,
// the default mode's duty cycle). Rates are laps per CPU-second of each Node-RED
// process (utime + stime from /proc): what the flows cost, independent of how
// the OS shares the cores (the wall-clock rate of a runtime that has a core to
// itself). Overheads are paired within a round; their mean over the rounds is
// reported with its 95 % confidence interval (Student's t over the rounds),
// and the targets are on the interval's upper bound: default mode < 3 %,
// continuous < 20 %. A wide interval (a noisy machine) fails the target:
// more rounds (--rounds N) narrow it.
// Last line: {"bench":"perf-monitor-overhead","default_overhead_pct","default_overhead_ci95_pct":[lo,hi],
//             "continuous_overhead_pct","continuous_overhead_ci95_pct", ..., "targets_met":{...}}
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../test/helpers/nodered-child';
import { flag, log, machine, meanCi95, repoRoot, result, round } from './lib/common';

const ROUNDS = Number(flag('rounds') ?? process.env.BENCH_ROUNDS ?? 12);
/** the default mode's sampling period */
const PERIOD_S = 10;
/** a measurement covers whole sampling periods, so the default mode is measured over its duty cycle */
const MEASURE_S = PERIOD_S * Math.max(1, Number(process.env.BENCH_PERIODS ?? 1));
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1500);
const IN_FLIGHT = 256;
const CHAIN = 10;
const HOPS = CHAIN + 1; // the change nodes and the counting function node

type Config = 'plain' | 'default' | 'continuous';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function flows(config: Config): object[] {
  const z = 'bench';
  const nodes: object[] = [
    { id: z, type: 'tab', label: 'bench' },
    { id: 'go', z, type: 'inject', once: true, onceDelay: 0.2, repeat: '', topic: 'start', props: [{ p: 'topic', vt: 'str' }], wires: [['pump']] },
    {
      id: 'pump',
      z,
      type: 'function',
      name: 'counting pump',
      outputs: 1,
      func: `
        if (msg.topic === 'start') {
          const s = { n: 0 };
          flow.set('s', s);
          for (let i = 0; i < ${IN_FLIGHT}; i++) node.send({ payload: i });
          return null;
        }
        flow.get('s').n++;
        return msg;`,
      wires: [['c1']],
    },
    { id: 'cntIn', z, type: 'http in', url: '/bench-count', method: 'get', wires: [['cntFn']] },
    { id: 'cntFn', z, type: 'function', outputs: 1, func: "const s = flow.get('s'); msg.payload = { n: s ? s.n : 0, t: Date.now() }; return msg;", wires: [['cntOut']] },
    { id: 'cntOut', z, type: 'http response', statusCode: '', headers: {}, wires: [] },
  ];
  for (let i = 1; i <= CHAIN; i++) {
    nodes.push({
      id: `c${i}`,
      z,
      type: 'change',
      name: '',
      rules: [{ t: 'set', p: 'hop', pt: 'msg', to: String(i), tot: 'num' }],
      wires: [[i < CHAIN ? `c${i + 1}` : 'pump']],
    });
  }
  if (config !== 'plain') {
    nodes.push({
      id: 'mon',
      z,
      type: 'rt-perf-monitor',
      version: 1,
      mode: config === 'continuous' ? 'continuous' : 'sampling',
      window: 1,
      period: PERIOD_S,
      interval: 10,
      filter: '',
      defaultRules: true,
      rules: '[]',
      wires: [[], [], []],
    });
  }
  return nodes;
}

/** Until rt-perf-monitor is listed in package.json, load its folder directly. */
function nodesDir(): string[] {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
  const dir = join(repoRoot, 'dist', 'nodes', 'rt-perf-monitor');
  return pkg['node-red'].nodes['rt-perf-monitor'] || !existsSync(dir) ? [repoRoot] : [repoRoot, dir];
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system, all threads) used so far by process `pid`. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15 (utime, stime)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  log(
    `perf-monitor-overhead: ${IN_FLIGHT} messages in flight through ${CHAIN} change nodes + 1 function node; ` +
      `3 Node-RED processes measured at the same time, ${ROUNDS} rounds of ${MEASURE_S} s, configurations rotated across processes`,
  );
  log(JSON.stringify(machine()));
  const rts = await Promise.all([0, 1, 2].map(() => startNodeRed({ settings: { nodesDir: nodesDir(), logging: { console: { level: 'warn' } } } })));
  const rates: Record<Config, number[]> = { plain: [], default: [], continuous: [] };
  const wall: Record<Config, number[]> = { plain: [], default: [], continuous: [] };
  const configs: Config[] = ['plain', 'default', 'continuous'];
  try {
    const count = async (rt: ChildRuntime): Promise<{ n: number; t: number; cpu: number }> => {
      const c = JSON.parse((await rt.get('/bench-count')).text) as { n: number; t: number };
      return { ...c, cpu: cpuSeconds(rt.proc.pid!) };
    };
    for (let r = 0; r < ROUNDS; r++) {
      // process i runs configuration (i + r) mod 3 this round
      const assign = rts.map((_, i) => configs[(i + r) % configs.length]);
      await Promise.all(rts.map((rt, i) => rt.deploy(flows(assign[i]))));
      await sleep(WARMUP_MS);
      const a = await Promise.all(rts.map(count));
      await sleep(MEASURE_S * 1000);
      const b = await Promise.all(rts.map(count));
      const line: string[] = [];
      for (let i = 0; i < rts.length; i++) {
        const laps = b[i].n - a[i].n;
        const rate = laps / (b[i].cpu - a[i].cpu);
        rates[assign[i]].push(rate);
        wall[assign[i]].push((laps / (b[i].t - a[i].t)) * 1000);
        line.push(`${assign[i]} ${Math.round(rate)}`);
      }
      log(`round ${r + 1}: msgs per CPU-s ${line.join(', ')}`);
    }
    for (const rt of rts) if (/\[error\]/.test(rt.log()) || process.env.BENCH_DEBUG) log(rt.log());
  } finally {
    await Promise.all(
      rts.map(async (rt) => {
        await rt.kill('SIGTERM');
        rt.cleanup();
      }),
    );
  }
  const plain = median(rates.plain);
  const dflt = median(rates.default);
  const cont = median(rates.continuous);
  // paired per round: each configuration against the plain rate of its own round
  const paired = (c: Config): number[] => rates[c].map((x, i) => (1 - x / rates.plain[i]) * 100);
  const dfltCi = meanCi95(paired('default'));
  const contCi = meanCi95(paired('continuous'));
  const dfltMedian = median(paired('default'));
  const contMedian = median(paired('continuous'));
  // extra time per message per hop with the hooks on all the time
  const nsPerHop = median(rates.continuous.map((x, i) => ((1 / x - 1 / rates.plain[i]) * 1e9) / HOPS));
  const ci = (c: ReturnType<typeof meanCi95>): string => `${c.mean.toFixed(1)} % (95 % interval ${c.lo.toFixed(1)} .. ${c.hi.toFixed(1)} %, sd ${c.sd.toFixed(1)} over ${c.n} rounds)`;
  log(`median rates: plain ${Math.round(plain)}, default ${Math.round(dflt)}, continuous ${Math.round(cont)} msgs per CPU-s`);
  log(`overhead, mean of the paired rounds: default ${ci(dfltCi)}, continuous ${ci(contCi)}; medians ${dfltMedian.toFixed(1)} % and ${contMedian.toFixed(1)} %; ${Math.round(nsPerHop)} ns per hop added`);
  result({
    bench: 'perf-monitor-overhead',
    plain_msgs_per_s: Math.round(plain),
    default_msgs_per_s: Math.round(dflt),
    continuous_msgs_per_s: Math.round(cont),
    default_overhead_pct: round(dfltCi.mean, 2),
    default_overhead_ci95_pct: [round(dfltCi.lo, 2), round(dfltCi.hi, 2)],
    continuous_overhead_pct: round(contCi.mean, 2),
    continuous_overhead_ci95_pct: [round(contCi.lo, 2), round(contCi.hi, 2)],
    default_overhead_median_pct: round(dfltMedian, 2),
    continuous_overhead_median_pct: round(contMedian, 2),
    ns_per_hop_added: Math.round(nsPerHop),
    targets_met: { default_ci95_upper_lt_3pct: dfltCi.hi < 3, continuous_ci95_upper_lt_20pct: contCi.hi < 20 },
    rate_basis: 'msgs per CPU-second of the Node-RED process',
    // wall-clock rates while the three runtimes shared the machine's cores (not a single-runtime figure)
    wall_concurrent_msgs_per_s: { plain: Math.round(median(wall.plain)), default: Math.round(median(wall.default)), continuous: Math.round(median(wall.continuous)) },
    hops_per_msg: HOPS,
    rounds: ROUNDS,
    measure_s: MEASURE_S,
    per_round_msgs_per_s: { plain: rates.plain.map(Math.round), default: rates.default.map(Math.round), continuous: rates.continuous.map(Math.round) },
    per_round_overhead_pct: { default: paired('default').map((x) => round(x, 1)), continuous: paired('continuous').map((x) => round(x, 1)) },
    machine: machine(),
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
