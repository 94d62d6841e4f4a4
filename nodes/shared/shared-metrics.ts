// Counters, gauges and latency histograms in a SharedArrayBuffer: a worker
// writes them lock-free (Atomics.add / Atomics.store, one writer thread per
// block), the main thread reads them at scrape time. No locks, no messages.
//
// A histogram keeps two views of every observation:
//  - Prometheus buckets (seconds, cumulative on export) so that /metrics can
//    be aggregated by Prometheus like any prom-client histogram;
//  - a fine log-linear histogram in microseconds (16 sub-buckets per power of
//    two: relative error <= 1/16 = 6.25 % on the bucket's upper bound) from
//    which p50/p95/p99 are computed, plus the exact max.
// Values are integers (microseconds) on the write path: no float maths.

export const DEFAULT_SECONDS_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export const FINE_BUCKETS = 16 + 28 * 16; // values 0..2^32-1 us
/** Relative error of a percentile read from the fine histogram (upper-bound estimate). */
export const FINE_RELATIVE_ERROR = 1 / 16;

/** Index of the fine bucket that holds `us` (a non-negative integer number of microseconds). */
export function fineIndex(us: number): number {
  const v = us >>> 0;
  if (v < 16) return v;
  const e = 31 - Math.clz32(v); // >= 4
  return 16 + (e - 4) * 16 + ((v >>> (e - 4)) & 15);
}

/** Exclusive upper bound (us) of fine bucket `i`. */
export function fineUpper(i: number): number {
  if (i < 16) return i + 1;
  const e = 4 + ((i - 16) >> 4);
  const sub = (i - 16) & 15;
  return (17 + sub) * 2 ** (e - 4);
}

/** Inclusive lower bound (us) of fine bucket `i`. */
export function fineLower(i: number): number {
  if (i < 16) return i;
  const e = 4 + ((i - 16) >> 4);
  const sub = (i - 16) & 15;
  return (16 + sub) * 2 ** (e - 4);
}

export interface MetricSpec {
  counters?: readonly string[];
  gauges?: readonly string[];
  histograms?: readonly string[];
  /** Prometheus bucket bounds in seconds, shared by every histogram of the block. */
  buckets?: readonly number[];
}

interface Layout {
  counters: string[];
  gauges: string[];
  histograms: string[];
  bucketsUs: Int32Array;
  bucketsS: number[];
  // BigInt64 words
  big: number; // counters + gauges + 2 per histogram (count, sumNs)
  // Int32 words per histogram: promBuckets+1 (+Inf) + fine + max
  histInts: number;
}

function layoutOf(spec: MetricSpec): Layout {
  const counters = [...(spec.counters ?? [])];
  const gauges = [...(spec.gauges ?? [])];
  const histograms = [...(spec.histograms ?? [])];
  const bucketsS = [...(spec.buckets ?? DEFAULT_SECONDS_BUCKETS)];
  for (let i = 1; i < bucketsS.length; i++) {
    if (!(bucketsS[i] > bucketsS[i - 1])) throw new RangeError('histogram buckets must increase');
  }
  const bucketsUs = Int32Array.from(bucketsS.map((s) => Math.round(s * 1e6)));
  const histInts = bucketsUs.length + 1 + FINE_BUCKETS + 1;
  return {
    counters,
    gauges,
    histograms,
    bucketsUs,
    bucketsS,
    big: counters.length + gauges.length + 2 * histograms.length,
    histInts,
  };
}

export function sharedMetricsBytes(spec: MetricSpec): number {
  const l = layoutOf(spec);
  return l.big * 8 + l.histograms.length * l.histInts * 4;
}

export interface HistogramSnapshot {
  count: number;
  sumSeconds: number;
  maxUs: number;
  /** Per-bucket (non-cumulative) Prometheus counts, last entry is +Inf. */
  buckets: number[];
  bucketBounds: number[];
  fine: Int32Array;
}

/** Percentile (0..1) in microseconds from a fine histogram; upper bound of the bucket, clamped to max. */
export function percentileUs(fine: ArrayLike<number>, count: number, q: number, maxUs: number): number {
  if (count <= 0) return 0;
  const rank = Math.max(1, Math.ceil(q * count));
  let acc = 0;
  for (let i = 0; i < fine.length; i++) {
    acc += fine[i];
    if (acc >= rank) return Math.min(fineUpper(i), Math.max(maxUs, fineLower(i)));
  }
  return maxUs;
}

export class SharedHistogram {
  constructor(
    private readonly big: BigInt64Array,
    private readonly bigBase: number,
    private readonly ints: Int32Array,
    private readonly base: number,
    private readonly bucketsUs: Int32Array,
    readonly bucketsS: readonly number[],
  ) {}

  /** Records one duration in microseconds (integer; negatives count as 0). Writer thread only. */
  observeUs(us: number): void {
    const v = us > 0 ? Math.floor(us) : 0;
    const b = this.bucketsUs;
    let k = 0;
    while (k < b.length && v > b[k]) k++;
    const ints = this.ints;
    const base = this.base;
    Atomics.add(ints, base + k, 1);
    Atomics.add(ints, base + b.length + 1 + fineIndex(v), 1);
    const maxIdx = base + b.length + 1 + FINE_BUCKETS;
    if (v > Atomics.load(ints, maxIdx)) Atomics.store(ints, maxIdx, v > 0x7fffffff ? 0x7fffffff : v);
    Atomics.add(this.big, this.bigBase, 1n);
    Atomics.add(this.big, this.bigBase + 1, BigInt(v) * 1000n);
  }

  snapshot(): HistogramSnapshot {
    const n = this.bucketsUs.length + 1;
    const buckets: number[] = new Array(n);
    for (let i = 0; i < n; i++) buckets[i] = Atomics.load(this.ints, this.base + i);
    const fine = new Int32Array(FINE_BUCKETS);
    for (let i = 0; i < FINE_BUCKETS; i++) fine[i] = Atomics.load(this.ints, this.base + n + i);
    return {
      count: Number(Atomics.load(this.big, this.bigBase)),
      sumSeconds: Number(Atomics.load(this.big, this.bigBase + 1)) / 1e9,
      maxUs: Atomics.load(this.ints, this.base + n + FINE_BUCKETS),
      buckets,
      bucketBounds: [...this.bucketsS],
      fine,
    };
  }

  /** p50/p95/p99/max in milliseconds over everything recorded so far (or since `since`). */
  summaryMs(since?: HistogramSnapshot): { count: number; p50: number; p95: number; p99: number; max: number } {
    const s = this.snapshot();
    let fine = s.fine;
    let count = s.count;
    if (since) {
      fine = s.fine.map((v, i) => v - since.fine[i]);
      count = s.count - since.count;
    }
    const mx = s.maxUs;
    return {
      count,
      p50: percentileUs(fine, count, 0.5, mx) / 1000,
      p95: percentileUs(fine, count, 0.95, mx) / 1000,
      p99: percentileUs(fine, count, 0.99, mx) / 1000,
      max: mx / 1000,
    };
  }
}

/**
 * One block of shared metrics. Create it on the main thread with a spec, hand
 * `sab` and the same spec to the worker, which attaches with `SharedMetrics.attach`.
 */
export class SharedMetrics {
  readonly sab: SharedArrayBuffer;
  readonly spec: MetricSpec;
  private readonly layout: Layout;
  private readonly big: BigInt64Array;
  private readonly ints: Int32Array;
  private readonly index = new Map<string, number>();
  private readonly hists = new Map<string, SharedHistogram>();

  private constructor(spec: MetricSpec, sab: SharedArrayBuffer) {
    this.spec = spec;
    this.layout = layoutOf(spec);
    if (sab.byteLength !== sharedMetricsBytes(spec)) {
      throw new RangeError('SharedMetrics: buffer size does not match the spec');
    }
    this.sab = sab;
    const l = this.layout;
    this.big = new BigInt64Array(sab, 0, l.big);
    this.ints = new Int32Array(sab, l.big * 8, l.histograms.length * l.histInts);
    let i = 0;
    for (const c of l.counters) this.index.set('c:' + c, i++);
    for (const g of l.gauges) this.index.set('g:' + g, i++);
    l.histograms.forEach((h, k) => {
      this.hists.set(h, new SharedHistogram(this.big, i + 2 * k, this.ints, k * l.histInts, l.bucketsUs, l.bucketsS));
    });
  }

  static create(spec: MetricSpec): SharedMetrics {
    return new SharedMetrics(spec, new SharedArrayBuffer(sharedMetricsBytes(spec)));
  }

  static attach(spec: MetricSpec, sab: SharedArrayBuffer): SharedMetrics {
    return new SharedMetrics(spec, sab);
  }

  private slot(kind: 'c' | 'g', name: string): number {
    const i = this.index.get(kind + ':' + name);
    if (i === undefined) throw new RangeError(`no ${kind === 'c' ? 'counter' : 'gauge'} named ${name}`);
    return i;
  }

  /** Counter increment (writer thread). */
  inc(name: string, by = 1): void {
    Atomics.add(this.big, this.slot('c', name), by === 1 ? 1n : BigInt(Math.floor(by)));
  }

  counter(name: string): number {
    return Number(Atomics.load(this.big, this.slot('c', name)));
  }

  setGauge(name: string, value: number): void {
    Atomics.store(this.big, this.slot('g', name), BigInt(Math.floor(value)));
  }

  gauge(name: string): number {
    return Number(Atomics.load(this.big, this.slot('g', name)));
  }

  histogram(name: string): SharedHistogram {
    const h = this.hists.get(name);
    if (!h) throw new RangeError(`no histogram named ${name}`);
    return h;
  }
}
