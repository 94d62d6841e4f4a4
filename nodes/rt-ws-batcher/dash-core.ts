// Dashboard mode: the numeric items of the batches, gathered and handed out at
// a bounded rate as one array of points, the shape Dashboard 2.0's ui-chart
// takes in one message ({x, y, topic} with the chart's X = key `x`, Y = key
// `y`, Series = key `topic`). Over `maxPoints` in one interval, points are
// thinned evenly (first and last kept). Pure.
import type { Item } from './wire';

export interface ChartPoint {
  x: number;
  y: number;
  topic: string;
}

export class DashFeed {
  private buf: ChartPoint[] = [];
  /** Points not sent because they were thinned out (counted). */
  thinned = 0;

  constructor(private readonly maxPoints: number) {}

  add(items: readonly Item[]): void {
    for (const it of items) {
      if (!Number.isFinite(it.num)) continue;
      this.buf.push({ x: Math.round(it.ts), y: it.num, topic: it.topic });
      // keep memory bounded between two takes: thin in place when 4x over
      if (this.buf.length >= 4 * this.maxPoints) this.buf = this.thin(this.buf, 2 * this.maxPoints);
    }
  }

  private thin(pts: ChartPoint[], n: number): ChartPoint[] {
    if (pts.length <= n) return pts;
    const out: ChartPoint[] = [];
    const step = (pts.length - 1) / (n - 1);
    for (let i = 0; i < n; i++) out.push(pts[Math.round(i * step)]);
    this.thinned += pts.length - n;
    return out;
  }

  /** The points gathered since the last take (at most maxPoints), or null when there are none. */
  take(): ChartPoint[] | null {
    if (this.buf.length === 0) return null;
    const pts = this.buf.length > this.maxPoints ? (this.maxPoints === 1 ? [this.buf[this.buf.length - 1]] : this.thin(this.buf, this.maxPoints)) : this.buf;
    if (pts.length === 1 && this.buf.length > 1) this.thinned += this.buf.length - 1;
    this.buf = [];
    return pts;
  }
}
