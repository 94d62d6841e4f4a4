// Main-thread latency histograms for the perf monitor. Same bucket scheme as
// the workers' SharedHistogram (nodes/shared/shared-metrics.ts): a fine
// log-linear histogram in microseconds (16 sub-buckets per power of two, so a
// percentile read from it is within 1/16 = 6.25 % of the true value, as an
// upper bound) plus the Prometheus buckets in seconds. Memory is fixed
// (FINE_BUCKETS + 17 numbers) whatever the number of observations. Plain
// arrays, no Atomics: one writer (the flow engine's thread) and one reader
// (the same thread, at tick or scrape time). Pure; no Node-RED.
import { DEFAULT_SECONDS_BUCKETS, FINE_BUCKETS, FINE_RELATIVE_ERROR, fineIndex, fineLower, fineUpper } from '../shared/shared-metrics';

export { FINE_BUCKETS, FINE_RELATIVE_ERROR };

const BUCKETS_US = DEFAULT_SECONDS_BUCKETS.map((s) => Math.round(s * 1e6));
const MAX_US = 0xffffffff;

/**
 * The Prometheus bucket of every value in fine bucket i, or -1 when a
 * Prometheus bound falls inside fine bucket i (then the value is compared).
 * Saves the bucket search on the hot path.
 */
const PROM_OF_FINE: Int8Array = (() => {
  const t = new Int8Array(FINE_BUCKETS);
  for (let i = 0; i < FINE_BUCKETS; i++) {
    const lo = fineLower(i);
    const hi = fineUpper(i); // exclusive
    let k = 0;
    while (k < BUCKETS_US.length && lo > BUCKETS_US[k]) k++;
    // every v in [lo, hi) is in bucket k iff (k == 0 or v > b[k-1], true as lo > b[k-1]) and v <= b[k]
    t[i] = k === BUCKETS_US.length || hi - 1 < BUCKETS_US[k] ? k : -1;
  }
  return t;
})();

function promIndex(v: number, fi: number): number {
  const k = PROM_OF_FINE[fi];
  if (k >= 0) return k;
  let j = 0;
  while (j < BUCKETS_US.length && v > BUCKETS_US[j]) j++;
  return j;
}

/** Percentile (q in 0..1) in microseconds from fine counts: the bucket's upper bound, clamped to max. */
export function finePercentileUs(fine: ArrayLike<number>, count: number, q: number, maxUs: number): number {
  if (!(count > 0)) return 0;
  const rank = Math.max(Number.MIN_VALUE, q * count);
  let acc = 0;
  for (let i = 0; i < fine.length; i++) {
    acc += fine[i];
    if (acc >= rank - 1e-9) return Math.min(fineUpper(i), Math.max(maxUs, fineLower(i)));
  }
  return maxUs;
}

/** A distribution over one period (or window): fine counts, count, max. */
export interface FineSample {
  fine: Float64Array;
  count: number;
  maxUs: number;
  sumUs: number;
}

export function emptySample(): FineSample {
  return { fine: new Float64Array(FINE_BUCKETS), count: 0, maxUs: 0, sumUs: 0 };
}

/** Adds `b` into `a` (in place) and returns `a`. */
export function mergeInto(a: FineSample, b: FineSample): FineSample {
  for (let i = 0; i < FINE_BUCKETS; i++) a.fine[i] += b.fine[i];
  a.count += b.count;
  a.sumUs += b.sumUs;
  if (b.maxUs > a.maxUs) a.maxUs = b.maxUs;
  return a;
}

export interface Summary {
  count: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

const r3 = (v: number): number => Math.round(v * 1000) / 1000;

/** p50/p90/p95/p99/max/mean in milliseconds. */
export function summarize(s: FineSample): Summary {
  const p = (q: number): number => r3(finePercentileUs(s.fine, s.count, q, s.maxUs) / 1000);
  return {
    count: Math.round(s.count),
    p50: p(0.5),
    p90: p(0.9),
    p95: p(0.95),
    p99: p(0.99),
    max: r3(s.maxUs / 1000),
    mean: s.count > 0 ? r3(s.sumUs / s.count / 1000) : 0,
  };
}

/** Percentile (0 < pct <= 100) in milliseconds; pct 100 is the exact max. */
export function percentileMs(s: FineSample, pct: number): number {
  if (pct >= 100) return s.maxUs / 1000;
  return finePercentileUs(s.fine, s.count, pct / 100, s.maxUs) / 1000;
}

/**
 * A cumulative histogram plus what is needed to report the last period:
 * `takePeriod()` returns the observations since the previous call (the
 * difference to a saved copy of the fine counts, and the period's own max).
 */
export class LocalHistogram {
  readonly fine = new Float64Array(FINE_BUCKETS);
  /** Non-cumulative Prometheus bucket counts; last is +Inf. */
  readonly prom = new Float64Array(BUCKETS_US.length + 1);
  count = 0;
  sumUs = 0;
  maxUs = 0;
  private periodMaxUs = 0;
  private prev: Float64Array | null = null;
  private prevCount = 0;
  private prevSum = 0;

  /** Records one duration in microseconds (fractional allowed; negative counts as 0). */
  observeUs(us: number): void {
    const v = us > 0 ? (us < MAX_US ? us : MAX_US) : 0;
    const fi = fineIndex(v);
    this.fine[fi]++;
    this.prom[promIndex(v, fi)]++;
    this.count++;
    this.sumUs += v;
    if (v > this.maxUs) this.maxUs = v;
    if (v > this.periodMaxUs) this.periodMaxUs = v;
  }

  /** Records `weight` observations of `us` (used to import another histogram's percentiles). */
  addWeighted(us: number, weight: number): void {
    if (!(weight > 0)) return;
    const v = us > 0 ? (us < MAX_US ? us : MAX_US) : 0;
    const fi = fineIndex(v);
    this.fine[fi] += weight;
    this.prom[promIndex(v, fi)] += weight;
    this.count += weight;
    this.sumUs += v * weight;
    if (v > this.maxUs) this.maxUs = v;
    if (v > this.periodMaxUs) this.periodMaxUs = v;
  }

  /** Everything recorded so far. */
  total(): FineSample {
    return { fine: this.fine.slice(), count: this.count, maxUs: this.maxUs, sumUs: this.sumUs };
  }

  /** The observations since the previous takePeriod() (or since creation). */
  takePeriod(): FineSample {
    const fine = new Float64Array(FINE_BUCKETS);
    const prev = this.prev;
    if (prev) for (let i = 0; i < FINE_BUCKETS; i++) fine[i] = this.fine[i] - prev[i];
    else fine.set(this.fine);
    const out: FineSample = { fine, count: this.count - this.prevCount, maxUs: this.periodMaxUs, sumUs: this.sumUs - this.prevSum };
    if (prev) prev.set(this.fine);
    else this.prev = this.fine.slice();
    this.prevCount = this.count;
    this.prevSum = this.sumUs;
    this.periodMaxUs = 0;
    return out;
  }

  reset(): void {
    this.fine.fill(0);
    this.prom.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.maxUs = 0;
    this.periodMaxUs = 0;
    this.prev = null;
    this.prevCount = 0;
    this.prevSum = 0;
  }

  /** Same shape as SharedHistogram.snapshot(), so the registry's histogram family can export it. */
  snapshot(): { count: number; sumSeconds: number; maxUs: number; buckets: number[]; bucketBounds: number[]; fine: Float64Array } {
    return {
      count: this.count,
      sumSeconds: this.sumUs / 1e6,
      maxUs: this.maxUs,
      buckets: Array.from(this.prom),
      bucketBounds: [...DEFAULT_SECONDS_BUCKETS],
      fine: this.fine,
    };
  }

  /** Numbers held, whatever the number of observations (the memory bound). */
  static readonly SIZE = FINE_BUCKETS * 3 + BUCKETS_US.length + 1;
}

/** A sample from fine counts that only grow (a worker's cumulative histogram): the difference to last time. */
export class DeltaTracker {
  private prev: Float64Array | null = null;
  private prevCount = 0;
  private prevSum = 0;
  private prevMax = 0;

  /** `fine`/`count`/`sumUs` are cumulative; a drop in count means the source restarted. */
  next(fine: ArrayLike<number>, count: number, sumUs: number, maxUs: number): FineSample {
    const out = emptySample();
    const restarted = this.prev === null || count < this.prevCount;
    for (let i = 0; i < FINE_BUCKETS; i++) {
      const d = restarted ? fine[i] : fine[i] - this.prev![i];
      out.fine[i] = d > 0 ? d : 0;
    }
    out.count = restarted ? count : count - this.prevCount;
    out.sumUs = restarted ? sumUs : Math.max(0, sumUs - this.prevSum);
    // A cumulative max only tells the period's max when it grew; otherwise use
    // the upper bound of the highest bucket touched in the period.
    if (restarted || maxUs > this.prevMax) out.maxUs = maxUs;
    else {
      for (let i = FINE_BUCKETS - 1; i >= 0; i--) {
        if (out.fine[i] > 0) {
          out.maxUs = Math.min(fineUpper(i), maxUs);
          break;
        }
      }
    }
    if (!this.prev) this.prev = new Float64Array(FINE_BUCKETS);
    for (let i = 0; i < FINE_BUCKETS; i++) this.prev[i] = fine[i];
    this.prevCount = count;
    this.prevSum = sumUs;
    this.prevMax = maxUs;
    return out;
  }
}

/**
 * Turns Prometheus cumulative buckets (upper bounds in seconds, +Inf last) into
 * a fine sample, each bucket's observations put at its upper bound (a
 * conservative estimate; error bounded by the bucket width).
 */
export function sampleFromPromBuckets(bounds: number[], cumulative: number[], sumSeconds: number): FineSample {
  const s = emptySample();
  let prev = 0;
  for (let i = 0; i < cumulative.length; i++) {
    const c = cumulative[i] - prev;
    prev = cumulative[i];
    if (c <= 0) continue;
    const le = i < bounds.length ? bounds[i] : bounds[bounds.length - 1] * 2;
    const us = Math.min(MAX_US, le * 1e6);
    s.fine[fineIndex(us)] += c;
    s.count += c;
    if (us > s.maxUs) s.maxUs = us;
  }
  s.sumUs = sumSeconds * 1e6;
  return s;
}
