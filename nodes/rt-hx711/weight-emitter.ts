// Which samples become flow messages: every sample, or at most one per drain
// batch when the period has passed or the weight moved by more than a delta,
// so that 80 SPS does not flood the flow engine. Pure.
import type { DecodedSample } from '../rt-scale/scale-api';

export class WeightEmitter {
  private lastT = -Infinity;
  private lastCg = NaN;

  /** periodUs 0: every sample. deltaCg 0: no on-change messages. */
  constructor(
    readonly periodUs: number,
    readonly deltaCg: number,
  ) {}

  pick(batch: readonly DecodedSample[]): DecodedSample[] {
    if (batch.length === 0) return [];
    if (this.periodUs === 0) return [...batch];
    const s = batch[batch.length - 1];
    const due = s.tUs - this.lastT >= this.periodUs;
    const moved = this.deltaCg > 0 && !(Math.abs(s.cg - this.lastCg) < this.deltaCg);
    if (!due && !moved) return [];
    this.lastT = s.tUs;
    this.lastCg = s.cg;
    return [s];
  }
}
