// The floor under any worker-thread design on this machine: how long a
// postMessage from the main thread takes to run code in an idle worker
// (the wake-up of another thread), sampled like the gate commands.
import { Worker } from 'node:worker_threads';

const SRC = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (t) => parentPort.postMessage(Number(process.hrtime.bigint() / 1000n) - t));
`;

/** Latencies in ms of `n` main -> worker hops, one every `everyMs`, sorted ascending. */
export async function threadHopMs(n = 1000, everyMs = 5): Promise<number[]> {
  const w = new Worker(SRC, { eval: true });
  const out: number[] = [];
  try {
    // Started and warmed up: its first answers are not counted.
    await new Promise<void>((resolve) => {
      let warm = 0;
      const onWarm = (): void => {
        if (++warm < 50) w.postMessage(Number(process.hrtime.bigint() / 1000n));
        else {
          w.off('message', onWarm);
          resolve();
        }
      };
      w.on('message', onWarm);
      w.postMessage(Number(process.hrtime.bigint() / 1000n));
    });
    await new Promise<void>((resolve, reject) => {
      w.on('error', reject);
      w.on('message', (us: number) => {
        out.push(us / 1000);
        if (out.length >= n) resolve();
      });
      let sent = 0;
      const t = setInterval(() => {
        w.postMessage(Number(process.hrtime.bigint() / 1000n));
        if (++sent >= n) clearInterval(t);
      }, everyMs);
    });
  } finally {
    await w.terminate();
  }
  return out.sort((a, b) => a - b);
}
