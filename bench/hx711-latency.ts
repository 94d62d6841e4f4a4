// npm run bench -- hx711-latency [--seconds=60]
//
// Data-ready -> controller latency of the HX711 sampler at 80 SPS, in a real
// Node-RED runtime (node-red-node-test-helper, in this process) on the
// simulated backend:
//   1. rt-scale's worker sampler, idle;
//   2. the same with the flow engine blocked 500 ms every second by a busy
//      function node (inject every 1 s -> function busy-looping 500 ms);
//   3. the same simulated chip and sampling engine run the usual way: a plain
//      Node-RED node on the main thread with a timer, under the same load.
// Latency = time from the simulated chip's data-ready edge (its crystal
// schedule) to the sample being in the ring, where the dosing controller takes
// it. The worker's figure is what a record carries (REC_LAT_US); the main
// thread's is measured the same way, in the same engine code.
// samples_missed = data-ready edges of the run with no published sample
// (discarded reads, ring overflows, conversions overwritten unread).
// Last line: {"idle_p50_ms","idle_p99_ms","load_p95_ms","load_p99_ms","load_max_ms",
//             "samples_missed","main_thread_load_p99_ms", ...}
import { RealClock } from '../nodes/rt-scale/clock';
import { simulatedHal } from '../nodes/rt-scale/hal';
import type { DecodedSample, ScaleNode } from '../nodes/rt-scale/scale-api';
import { ScaleEngine } from '../nodes/rt-scale/scale-engine';
import type { NodeAPI, NodeDef } from '../nodes/shared/red-types';
import { log, machine, percentile, result, round } from './lib/common';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

const arg = process.argv.find((a) => a.startsWith('--seconds='));
const SECONDS = arg ? Number(arg.split('=')[1]) : Number(process.env.BENCH_SECONDS ?? 60);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Run {
  lat: number[];
  missed: number;
  samples: number;
}

/** The usual way: a Node-RED node that samples on the main thread with a timer. */
const mainThreadSampler = (RED: NodeAPI): void => {
  function MainSampler(this: { on(e: string, f: () => void): void; _run: Run }, def: NodeDef): void {
    RED.nodes.createNode(this as never, def);
    const clock = new RealClock();
    const hal = simulatedHal(clock);
    const sim = hal.sim!;
    const engine = new ScaleEngine(hal, { gain: 'A128', cal: { zero: 84_000, cpgMilli: 420_000 }, sampler: {}, calSamples: 16, periodUs: sim.periodUs }, null, null, () => undefined);
    const run: Run = { lat: [], missed: 0, samples: 0 };
    this._run = run;
    let lastT = 0;
    engine.addListener((s) => {
      run.lat.push((clock.nowUs() - s.tUs) / 1000);
      if (lastT) run.missed += Math.max(0, Math.round((s.tUs - lastT) / sim.periodUs) - 1);
      lastT = s.tUs;
      run.samples++;
    });
    engine.start();
    this.on('close', () => engine.close());
  }
  RED.nodes.registerType('bench-main-sampler', MainSampler as never);
};

function flow(kind: 'worker' | 'main', load: boolean): object[] {
  const f: object[] = [{ id: 't', type: 'tab', label: 'bench' }];
  if (kind === 'worker') {
    f.push(
      { id: 'sc', type: 'rt-scale', name: 'bench', version: 1, backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 5000 },
      { id: 'hx', z: 't', type: 'rt-hx711', version: 1, scale: 'sc', rate: 10, deltaG: 0.5, wires: [[]] },
    );
  } else f.push({ id: 'ms', z: 't', type: 'bench-main-sampler', wires: [] });
  if (load) {
    f.push(
      { id: 'tick', z: 't', type: 'inject', repeat: '1', once: true, onceDelay: 0.5, props: [{ p: 'payload' }], payload: '', payloadType: 'date', wires: [['busy']] },
      { id: 'busy', z: 't', type: 'function', name: 'busy 500 ms', func: 'const end = Date.now() + 500; while (Date.now() < end) {} return null;', outputs: 1, wires: [[]] },
    );
  }
  return f;
}

async function measure(kind: 'worker' | 'main', load: boolean): Promise<Run> {
  await new Promise<void>((resolve, reject) =>
    helper.load(
      [
        require('../nodes/rt-scale/rt-scale'),
        require('../nodes/rt-hx711/rt-hx711'),
        require('@node-red/nodes/core/common/20-inject.js'),
        require('@node-red/nodes/core/function/10-function.js'),
        mainThreadSampler,
      ],
      flow(kind, load),
      (err: Error | undefined) => (err ? reject(err) : resolve()),
    ),
  );
  let run: Run;
  if (kind === 'worker') {
    run = { lat: [], missed: 0, samples: 0 };
    const r = run;
    let lastT = 0;
    let warm = true;
    (helper.getNode('sc') as ScaleNode).attach({
      onSamples: (batch: readonly DecodedSample[]) => {
        for (const s of batch) {
          if (warm) continue;
          r.lat.push(s.latUs / 1000);
          if (lastT) r.missed += Math.max(0, Math.round((s.tUs - lastT) / 12_500) - 1);
          lastT = s.tUs;
          r.samples++;
        }
      },
    });
    await sleep(1000);
    warm = false;
    await sleep(SECONDS * 1000);
  } else {
    await sleep(1000);
    run = (helper.getNode('ms') as unknown as { _run: Run })._run;
    run.lat.length = 0;
    run.missed = 0;
    run.samples = 0;
    await sleep(SECONDS * 1000);
  }
  const out = { lat: [...run.lat], missed: run.missed, samples: run.samples };
  await helper.unload();
  await sleep(300);
  return out;
}

function stats(r: Run): { p50: number; p95: number; p99: number; max: number } {
  const s = [...r.lat].sort((a, b) => a - b);
  return { p50: round(percentile(s, 0.5)), p95: round(percentile(s, 0.95)), p99: round(percentile(s, 0.99)), max: round(s[s.length - 1] ?? NaN) };
}

async function main(): Promise<void> {
  log(`hx711-latency: ${SECONDS} s per phase at 80 SPS`, JSON.stringify(machine()));
  const idle = await measure('worker', false);
  log('worker idle', JSON.stringify(stats(idle)), `samples ${idle.samples} missed ${idle.missed}`);
  const load = await measure('worker', true);
  log('worker load', JSON.stringify(stats(load)), `samples ${load.samples} missed ${load.missed}`);
  const main = await measure('main', true);
  log('main-thread load', JSON.stringify(stats(main)), `samples ${main.samples} missed ${main.missed}`);
  const si = stats(idle);
  const sl = stats(load);
  const sm = stats(main);
  const expected = SECONDS * 80;
  result({
    idle_p50_ms: si.p50,
    idle_p99_ms: si.p99,
    load_p95_ms: sl.p95,
    load_p99_ms: sl.p99,
    load_max_ms: sl.max,
    samples_missed: idle.missed + load.missed,
    main_thread_load_p99_ms: sm.p99,
    main_thread_load_p95_ms: sm.p95,
    main_thread_load_max_ms: sm.max,
    load_idle_p99_ratio: round(sl.p99 / si.p99, 2),
    samples_idle: idle.samples,
    samples_load: load.samples,
    samples_expected_per_phase: expected,
    seconds: SECONDS,
    targets_met: sl.p95 < 1 && sl.p99 < 5 && sl.p99 <= sm.p99 / 5 && idle.missed + load.missed === 0,
  });
  process.exit(0);
}

main().catch((e) => {
  log(e instanceof Error ? e.stack : String(e));
  process.exit(1);
});
