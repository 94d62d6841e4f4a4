// The direct source: a scale's samples, pushed into a shared ring by the
// consumer module in the scale's HAL worker (ws-batcher.consumer.ts), drained
// into the hub by whichever thread owns it (Node-RED's in shared mode, the
// batcher's worker in worker mode). No flow-engine hop in worker mode.
import { SpscRing } from '../shared/spsc-ring';
import type { Item } from './wire';

export const TWO32 = 4294967296;

export class SampleSource {
  private readonly ring: SpscRing;
  constructor(
    ring: SharedArrayBuffer,
    private readonly topic: string,
    private readonly nowMs: () => number,
    private readonly nowUs: () => number,
  ) {
    this.ring = SpscRing.attach(ring);
  }

  /** Moves every queued sample into `enqueue` (grams as the payload, the sample's time as ts). */
  drain(enqueue: (it: Item) => void): number {
    const nMs = this.nowMs();
    const nUs = this.nowUs();
    return this.ring.drain((r) => {
      const tsUs = r[0] * TWO32 + (r[1] >>> 0);
      const ts = tsUs / 1000;
      const g = r[2] / 100;
      enqueue({ topic: this.topic, json: String(g), num: g, ts, enqUs: nUs - Math.max(0, nMs - ts) * 1000 });
    });
  }

  dropped(): number {
    return this.ring.dropped();
  }
}
