// A bounded single-producer single-consumer ring of fixed-size records over a
// SharedArrayBuffer. One thread pushes, another pops; neither ever waits for
// the other. A full ring rejects the newest record (the producer counts it) so
// a slow consumer can never block a time-critical producer.
//
// Layout (Int32 words):
//   header[0] head   write index (monotonic, wraps at 2^32; only the producer stores it)
//   header[1] tail   read index  (monotonic; only the consumer stores it)
//   header[2] dropped            (records rejected because the ring was full)
//   header[3] capacity           (records; a power of two)
//   header[4] recordWords
//   header[5] signal             (bumped on every push, for Atomics.wait/waitAsync)
//   header[6..7] reserved
//   data      capacity * recordWords Int32 words
// Release/acquire: the producer writes a record with plain stores and then
// publishes it with Atomics.store(head); the consumer reads head with
// Atomics.load before it reads the record, and frees the slot with
// Atomics.store(tail) after. Atomics are sequentially consistent in JS, which
// gives the ordering both sides need.

const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const CAPACITY = 3;
const RECORD_WORDS = 4;
const SIGNAL = 5;
export const RING_HEADER_WORDS = 8;

export interface RingLayout {
  capacity: number;
  recordWords: number;
}

export function ringBytes(capacity: number, recordWords: number): number {
  return (RING_HEADER_WORDS + capacity * recordWords) * 4;
}

function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

export class SpscRing {
  readonly sab: SharedArrayBuffer;
  readonly capacity: number;
  readonly recordWords: number;
  private readonly header: Int32Array;
  private readonly data: Int32Array;
  private readonly mask: number;

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.header = new Int32Array(sab, 0, RING_HEADER_WORDS);
    this.capacity = this.header[CAPACITY];
    this.recordWords = this.header[RECORD_WORDS];
    if (!isPow2(this.capacity) || this.recordWords < 1) {
      throw new RangeError('SpscRing: buffer is not an initialised ring');
    }
    this.mask = this.capacity - 1;
    this.data = new Int32Array(sab, RING_HEADER_WORDS * 4, this.capacity * this.recordWords);
  }

  /** Allocates a new ring. capacity must be a power of two. */
  static create(capacity: number, recordWords: number): SpscRing {
    if (!Number.isInteger(capacity) || !isPow2(capacity) || capacity > 1 << 24) {
      throw new RangeError(`SpscRing capacity must be a power of two up to 2^24, got ${capacity}`);
    }
    if (!Number.isInteger(recordWords) || recordWords < 1 || recordWords > 1024) {
      throw new RangeError(`SpscRing recordWords must be 1..1024, got ${recordWords}`);
    }
    const sab = new SharedArrayBuffer(ringBytes(capacity, recordWords));
    const h = new Int32Array(sab, 0, RING_HEADER_WORDS);
    h[CAPACITY] = capacity;
    h[RECORD_WORDS] = recordWords;
    return new SpscRing(sab);
  }

  /** Attaches to a ring created elsewhere (e.g. in another thread). */
  static attach(sab: SharedArrayBuffer): SpscRing {
    return new SpscRing(sab);
  }

  /** Records currently queued (a snapshot: either side may move it). */
  size(): number {
    return (Atomics.load(this.header, HEAD) - Atomics.load(this.header, TAIL)) >>> 0;
  }

  dropped(): number {
    return Atomics.load(this.header, DROPPED) >>> 0;
  }

  /**
   * Producer side. Copies `record` (recordWords Int32 values) into the ring.
   * Returns false, and counts a drop, when the ring is full. Never waits.
   */
  push(record: ArrayLike<number>): boolean {
    const head = this.header[HEAD]; // only this thread writes head
    const tail = Atomics.load(this.header, TAIL);
    if (((head - tail) >>> 0) >= this.capacity) {
      Atomics.add(this.header, DROPPED, 1);
      return false;
    }
    const w = this.recordWords;
    const base = (head & this.mask) * w;
    const d = this.data;
    for (let i = 0; i < w; i++) d[base + i] = record[i] | 0;
    Atomics.store(this.header, HEAD, (head + 1) | 0);
    Atomics.add(this.header, SIGNAL, 1);
    Atomics.notify(this.header, SIGNAL);
    return true;
  }

  /**
   * Consumer side. Copies the oldest record into `out` and frees its slot.
   * Returns false when the ring is empty.
   */
  pop(out: Int32Array | number[]): boolean {
    const tail = this.header[TAIL]; // only this thread writes tail
    const head = Atomics.load(this.header, HEAD);
    if (head === tail) return false;
    const w = this.recordWords;
    const base = (tail & this.mask) * w;
    const d = this.data;
    for (let i = 0; i < w; i++) out[i] = d[base + i];
    Atomics.store(this.header, TAIL, (tail + 1) | 0);
    return true;
  }

  /** Consumer side: pops up to `max` records, calling fn for each (record view valid during the call). */
  drain(fn: (rec: Int32Array) => void, max = Infinity): number {
    const out = new Int32Array(this.recordWords);
    let n = 0;
    while (n < max && this.pop(out)) {
      fn(out);
      n++;
    }
    return n;
  }

  /** The signal word, for consumers that want to sleep until the next push. */
  signalValue(): number {
    return Atomics.load(this.header, SIGNAL);
  }

  /** Consumer in a worker: block up to timeoutMs for a push after `seen`. Never call on the main thread. */
  waitForPush(seen: number, timeoutMs: number): 'ok' | 'not-equal' | 'timed-out' {
    return Atomics.wait(this.header, SIGNAL, seen, timeoutMs);
  }

  /** Consumer on the main thread: resolves on the next push after `seen` (or timeout). */
  waitForPushAsync(seen: number, timeoutMs: number): Promise<'ok' | 'not-equal' | 'timed-out'> {
    const r = Atomics.waitAsync(this.header, SIGNAL, seen, timeoutMs);
    return r.async ? r.value : Promise.resolve(r.value);
  }
}
