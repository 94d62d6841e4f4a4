// The sampling loop's logic, one call per data-ready: guard, decode, settle,
// filter, convert to centigrams, judge stability, count faults. Integer
// arithmetic on the hot path (values stay far below 2^53, so JS numbers hold
// them exactly); grams appear only at the flow boundary. Pure: no Node-RED
// import, no clock: the caller passes times.
import { CodedError } from '../shared/coded';
import { CODE_ALL_ONES, CODE_MAX, CODE_MIN, type FrameResult } from './hx711-protocol';

/**
 * Why a read was discarded or flagged (metrics label `reason`):
 * overrun: a PD_SCK pulse was high >= 60 us (the chip powered down mid-frame);
 * frame_long: the frame took longer than its bound (a preempted bit-bang);
 * late: the frame followed a missed data-ready (the conversion may have been
 *   overwritten while it was read);
 * power_down: all ones where the readings before were nowhere near -1 (a chip
 *   that powered down or lost its supply);
 * dout_low: DOUT not high after the last pulse; saturated; stuck (the same
 * code too many times in a row); no_data (no data-ready for 3 periods);
 * not_ready (DOUT high when a read was due).
 */
export type BadReason = 'overrun' | 'dout_low' | 'saturated' | 'stuck' | 'no_data' | 'not_ready' | 'frame_long' | 'late' | 'power_down';
export const BAD_REASONS: readonly BadReason[] = ['overrun', 'dout_low', 'saturated', 'stuck', 'no_data', 'not_ready', 'frame_long', 'late', 'power_down'];

/** An all-ones frame counts as a real -1 only when the last accepted reading was this close to it (counts). */
export const ALL_ONES_PLAUSIBLE = 4096;

/** Sample flags (a bit set). */
export const FLAG_STABLE = 1;
export const FLAG_FAULT = 2;

export interface Calibration {
  /** Counts with nothing on the (tared) cell. */
  zero: number;
  /** Counts per gram, times 1000 (integer: 420.5 counts/g -> 420500). */
  cpgMilli: number;
}

export interface SamplerOptions {
  /** Conversions discarded after power-up or a gain change (datasheet: 50 ms = 4 at 80 SPS). */
  settle: number;
  /** Median of 3 before the average (spike rejection). */
  median: boolean;
  /** Moving average length (1 = none), 1..16. */
  average: number;
  /** Identical raw values in a row that count as stuck. */
  stuckRun: number;
  /** Bad reads in a row that raise a fault. */
  faultRun: number;
  /** Stability window (samples) and largest spread in it (cg) that counts as stable. */
  stableWindow: number;
  stableCg: number;
  /** Samples kept for the noise readout. */
  noiseWindow: number;
}

export const DEFAULT_SAMPLER: SamplerOptions = {
  settle: 4,
  median: true,
  average: 4,
  stuckRun: 12,
  faultRun: 3,
  stableWindow: 40,
  stableCg: 5,
  noiseWindow: 80,
};

export interface SampleOut {
  /** Published samples, 1, 2, 3... (a gap downstream means a sample was lost on the way). */
  seq: number;
  /** Data-ready edge time, us. */
  tUs: number;
  /** Decoded counts (unfiltered). */
  raw: number;
  /** Filtered counts. */
  filtered: number;
  /** Weight, centigrams, tared and calibrated. */
  cg: number;
  flags: number;
}

export type SamplerEvent =
  | { t: 'fault'; reason: BadReason; run: number }
  | { t: 'recovered' };

/** Monotonic deque over a fixed window, for O(1) amortised min and max. */
class WindowMinMax {
  private readonly vals: Int32Array;
  private readonly idx: Float64Array;
  private readonly minQ: Int32Array;
  private readonly maxQ: Int32Array;
  private minH = 0;
  private minT = 0;
  private maxH = 0;
  private maxT = 0;
  private n = 0;
  private readonly cap: number;

  constructor(readonly window: number) {
    this.cap = window + 1;
    this.vals = new Int32Array(this.cap);
    this.idx = new Float64Array(this.cap);
    this.minQ = new Int32Array(this.cap);
    this.maxQ = new Int32Array(this.cap);
  }

  reset(): void {
    this.minH = this.minT = this.maxH = this.maxT = 0;
    this.n = 0;
  }

  /** Adds v; returns the spread (max - min) over the last `window` values, or -1 while not full. */
  push(v: number): number {
    const i = this.n++;
    const slot = i % this.cap;
    this.vals[slot] = v;
    this.idx[slot] = i;
    const c = this.cap;
    while (this.minT !== this.minH && this.vals[this.minQ[(this.minT - 1 + c) % c]] >= v) this.minT = (this.minT - 1 + c) % c;
    this.minQ[this.minT] = slot;
    this.minT = (this.minT + 1) % c;
    while (this.maxT !== this.maxH && this.vals[this.maxQ[(this.maxT - 1 + c) % c]] <= v) this.maxT = (this.maxT - 1 + c) % c;
    this.maxQ[this.maxT] = slot;
    this.maxT = (this.maxT + 1) % c;
    const oldest = i - this.window + 1;
    while (this.idx[this.minQ[this.minH]] < oldest) this.minH = (this.minH + 1) % c;
    while (this.idx[this.maxQ[this.maxH]] < oldest) this.maxH = (this.maxH + 1) % c;
    if (this.n < this.window) return -1;
    return this.vals[this.maxQ[this.maxH]] - this.vals[this.minQ[this.minH]];
  }
}

/** Median of three integers. */
export function med3(x: number, y: number, z: number): number {
  const lo = x < y ? x : y;
  const hi = x < y ? y : x;
  return z < lo ? lo : z > hi ? hi : z;
}

/** Centigrams from counts. */
export function countsToCg(counts: number, cal: Calibration): number {
  return Math.round(((counts - cal.zero) * 100_000) / cal.cpgMilli);
}

/** Codes of calibration errors (catalog rt-scale.codes.<code>). */
export const CALIBRATION_CODES = ['bad-known-weight', 'cal-no-change'] as const;

/**
 * The calibration that makes `avgCounts` read `knownCg` centigrams with the
 * current zero. Throws a CodedError: bad-known-weight, cal-no-change.
 */
export function calibrateCpg(avgCounts: number, zero: number, knownCg: number): number {
  if (!Number.isInteger(knownCg) || knownCg <= 0) throw new CodedError('bad-known-weight');
  const cpgMilli = Math.round(((avgCounts - zero) * 100_000) / knownCg);
  if (cpgMilli === 0) throw new CodedError('cal-no-change');
  return cpgMilli;
}

/**
 * The scale's reading filter: spike rejection by the median of the last three
 * (when `median`), then a moving average of the last `average`. Its output is
 * the mean, unrounded. Used by the sampler, and by the dosing benchmark to feed
 * the controller what the scale feeds it.
 */
export class ReadingFilter {
  private m1 = 0;
  private m2 = 0;
  private mCount = 0;
  private readonly avgBuf: Float64Array;
  private avgSum = 0;
  private avgN = 0;
  private avgI = 0;

  constructor(
    readonly median: boolean,
    readonly average: number,
  ) {
    if (!Number.isInteger(average) || average < 1 || average > 16) throw new RangeError('average must be 1..16');
    this.avgBuf = new Float64Array(average);
  }

  reset(): void {
    this.mCount = 0;
    this.avgSum = this.avgN = this.avgI = 0;
  }

  push(x: number): number {
    let v = x;
    if (this.median) {
      const a = this.m1;
      const b = this.m2;
      this.m2 = this.m1;
      this.m1 = x;
      this.mCount++;
      if (this.mCount >= 3) v = med3(x, a, b);
    }
    const n = this.average;
    if (this.avgN === n) this.avgSum -= this.avgBuf[this.avgI];
    else this.avgN++;
    this.avgBuf[this.avgI] = v;
    this.avgSum += v;
    this.avgI = (this.avgI + 1) % n;
    return this.avgSum / this.avgN;
  }
}

export class Sampler {
  readonly o: SamplerOptions;
  cal: Calibration;
  seq = 0;
  /** Counts by reason, and good samples. */
  readonly bad: Record<BadReason, number> = { overrun: 0, dout_low: 0, saturated: 0, stuck: 0, no_data: 0, not_ready: 0, frame_long: 0, late: 0, power_down: 0 };
  good = 0;
  settled = 0;
  private settleLeft: number;
  private readonly filter: ReadingFilter;
  private lastRaw = NaN;
  /** The last reading that was decoded and not discarded (NaN after power-up). */
  private lastAccepted = NaN;
  private sameRun = 0;
  private badRun = 0;
  private faulted: BadReason | null = null;
  private readonly stable: WindowMinMax;
  private readonly noise: Int32Array;
  private noiseN = 0;
  private noiseI = 0;
  private lastCg = 0;
  private lastFiltered = 0;
  /** Collects filtered counts for tare/calibrate. */
  private collector: { left: number; sum: number; n: number; done: (avg: number) => void } | null = null;

  constructor(cal: Calibration, opts: Partial<SamplerOptions> = {}) {
    this.o = { ...DEFAULT_SAMPLER, ...opts };
    this.filter = new ReadingFilter(this.o.median, this.o.average);
    this.cal = cal;
    this.settleLeft = this.o.settle;
    this.stable = new WindowMinMax(Math.max(2, this.o.stableWindow));
    this.noise = new Int32Array(Math.max(2, this.o.noiseWindow));
  }

  /** After power-up or a gain change: discard the next `settle` conversions and restart the filters. */
  resettle(): void {
    this.settleLeft = this.o.settle;
    this.filter.reset();
    this.stable.reset();
    this.lastRaw = NaN;
    this.lastAccepted = NaN;
    this.sameRun = 0;
  }

  /** Averages the next n filtered values (for tare and calibration). */
  collect(n: number, done: (avgCounts: number) => void): void {
    this.collector = { left: n, sum: 0, n: 0, done };
  }

  /** A data-ready period passed without an edge. */
  missing(): SamplerEvent | null {
    return this.badRead('no_data');
  }

  /**
   * A frame read after a missed data-ready (its conversion may have changed under the read): discarded. If the
   * frame also shows that the chip powered down (a clock pulse held high too long, or all ones), the chip settles
   * again as after any power-down: its next conversions are not to be trusted either.
   */
  late(fr: FrameResult): SamplerEvent | null {
    if (this.poweredDown(fr)) this.resettle();
    return this.badRead('late');
  }

  /** The frame shows a chip that powered down: PD_SCK held high too long, or all ones where nothing was near -1. */
  private poweredDown(fr: FrameResult): boolean {
    if (!fr.ok) return fr.failure === 'overrun';
    return fr.code === CODE_ALL_ONES && !(Math.abs(this.lastAccepted + 1) <= ALL_ONES_PLAUSIBLE);
  }

  /**
   * One frame read at a data-ready edge. Returns the sample to publish (null
   * when the read is discarded) and a fault/recovery event if the run changed.
   */
  onFrame(fr: FrameResult, edgeUs: number): { sample: SampleOut | null; event: SamplerEvent | null; bad: BadReason | 'settling' | null } {
    if (!fr.ok) {
      const reason: BadReason = fr.failure === 'overrun' ? 'overrun' : fr.failure === 'dout-low' ? 'dout_low' : fr.failure === 'frame-long' ? 'frame_long' : 'not_ready';
      if (this.poweredDown(fr)) this.resettle(); // an overrun: the chip powered down and restarts, it settles again
      return { sample: null, event: this.badRead(reason), bad: reason };
    }
    if (this.poweredDown(fr)) {
      // every bit high, and nothing before it near -1: the chip powered down (or lost its supply); it settles again
      this.resettle();
      return { sample: null, event: this.badRead('power_down'), bad: 'power_down' };
    }
    const raw = fr.value;
    if (this.settleLeft > 0) {
      this.settleLeft--;
      this.settled++;
      return { sample: null, event: null, bad: 'settling' };
    }
    this.lastAccepted = raw;
    if (raw === CODE_MAX || raw === CODE_MIN) {
      return { sample: this.flagged(raw, edgeUs), event: this.badRead('saturated'), bad: 'saturated' };
    }
    if (raw === this.lastRaw) this.sameRun++;
    else this.sameRun = 1;
    this.lastRaw = raw;
    if (this.sameRun >= this.o.stuckRun) {
      return { sample: this.flagged(raw, edgeUs), event: this.badRead('stuck'), bad: 'stuck' };
    }
    // spike rejection (median of the last three), then the moving average
    const filtered = Math.round(this.filter.push(raw));
    const cg = countsToCg(filtered, this.cal);
    this.lastCg = cg;
    this.lastFiltered = filtered;
    const spread = this.stable.push(cg);
    const flags = spread >= 0 && spread <= this.o.stableCg ? FLAG_STABLE : 0;
    this.noise[this.noiseI] = raw;
    this.noiseI = (this.noiseI + 1) % this.noise.length;
    if (this.noiseN < this.noise.length) this.noiseN++;
    this.good++;
    if (this.collector) {
      const c = this.collector;
      c.sum += filtered;
      c.n++;
      if (--c.left <= 0) {
        this.collector = null;
        c.done(Math.round(c.sum / c.n));
      }
    }
    this.badRun = 0;
    let event: SamplerEvent | null = null;
    if (this.faulted) {
      this.faulted = null;
      event = { t: 'recovered' };
    }
    return { sample: { seq: ++this.seq, tUs: edgeUs, raw, filtered, cg, flags }, event, bad: null };
  }

  /** Sigma of the last noiseWindow raw samples, in grams (off the hot path: on request). */
  noiseG(): number {
    const n = this.noiseN;
    if (n < 2) return 0;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += this.noise[i];
    mean /= n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += (this.noise[i] - mean) ** 2;
    return Math.sqrt(ss / (n - 1)) / Math.abs(this.cal.cpgMilli / 1000);
  }

  private flagged(raw: number, edgeUs: number): SampleOut {
    return { seq: ++this.seq, tUs: edgeUs, raw, filtered: this.lastFiltered, cg: this.lastCg, flags: FLAG_FAULT };
  }

  private badRead(reason: BadReason): SamplerEvent | null {
    this.bad[reason]++;
    this.badRun++;
    if (!this.faulted && this.badRun >= this.o.faultRun) {
      this.faulted = reason;
      return { t: 'fault', reason, run: this.badRun };
    }
    return null;
  }
}
