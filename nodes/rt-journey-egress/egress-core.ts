// Pure logic of rt-journey-egress: line encoding, file name patterns for
// daily rotation, the flush policy, and the main-thread ledger of accepted but
// not yet written lines. No Node-RED, no threads, no file I/O.
import { type Coded, coded, CodedError, type MsgParams } from '../shared/coded';

/**
 * Codes of bad input and of bad path patterns (catalog
 * rt-journey-egress.codes.<code>); `an-array` is the `what` of not-object for
 * an array (other values: null or the JS type name).
 */
export const EGRESS_INPUT_CODES = ['not-object', 'an-array', 'circular', 'bigint', 'unserialisable'] as const;
export const PATH_PROBLEMS = ['path-empty', 'path-bad-field', 'path-nul'] as const;

export class EgressInputError extends CodedError<'not-object' | 'circular' | 'bigint' | 'unserialisable'> {
  constructor(code: 'not-object' | 'circular' | 'bigint' | 'unserialisable', params: MsgParams = {}) {
    super(code, params);
    this.name = 'EgressInputError';
  }
}

/**
 * An object whose JSON form is an object: not an array, a Buffer, a typed
 * array, a Date, a Map... Works across realms: payloads built in a function
 * node come from its vm context, whose Object.prototype is not ours.
 */
function isJsonObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  return Object.prototype.toString.call(v) === '[object Object]';
}

/**
 * Encodes one journey as one JSON line (without the newline). Throws
 * EgressInputError for a payload that is not a plain object, a circular
 * structure or a BigInt. A line never contains a raw newline: JSON.stringify
 * escapes them inside strings.
 */
export function encodeLine(payload: unknown): string {
  if (!isJsonObject(payload)) {
    const what = payload === null ? 'null' : Array.isArray(payload) ? coded('an-array') : typeof payload;
    throw new EgressInputError('not-object', { what });
  }
  try {
    return JSON.stringify(payload);
  } catch (err) {
    const m = err instanceof Error ? err.message : String(err);
    if (/circular/i.test(m)) throw new EgressInputError('circular');
    if (/BigInt/i.test(m)) throw new EgressInputError('bigint');
    throw new EgressInputError('unserialisable', { error: m });
  }
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * Expands a path pattern for the time `ms`: %Y year, %m month, %d day, %H hour,
 * %% a literal percent. Local time unless `utc`.
 */
export function formatPath(pattern: string, ms: number, utc = false): string {
  const d = new Date(ms);
  const Y = utc ? d.getUTCFullYear() : d.getFullYear();
  const m = (utc ? d.getUTCMonth() : d.getMonth()) + 1;
  const day = utc ? d.getUTCDate() : d.getDate();
  const H = utc ? d.getUTCHours() : d.getHours();
  return pattern.replace(/%([YmdH%])/g, (_, c: string) => {
    switch (c) {
      case 'Y':
        return pad(Y, 4);
      case 'm':
        return pad(m);
      case 'd':
        return pad(day);
      case 'H':
        return pad(H);
      default:
        return '%';
    }
  });
}

/** Validates a path pattern; returns the problem (a PATH_PROBLEMS code) or null. */
export function checkPattern(pattern: unknown): Coded | null {
  if (typeof pattern !== 'string' || pattern.trim() === '') return coded('path-empty');
  if (/%[^YmdH%]/.test(pattern) || /%$/.test(pattern)) return coded('path-bad-field');
  if (pattern.includes('\0')) return coded('path-nul');
  return null;
}

export interface FlushPolicy {
  /** Flush as soon as this many lines are pending. */
  count: number;
  /** Flush lines that have waited this long. */
  intervalMs: number;
}

/**
 * Decides when the worker writes: on `count` pending lines or when the oldest
 * pending line has waited `intervalMs`, whichever comes first.
 */
export class FlushScheduler {
  private oldest = -1;
  constructor(
    readonly policy: FlushPolicy,
    private readonly now: () => number,
  ) {}
  /** Lines were added; returns 'now' or the delay (ms) until a timer flush is due. */
  added(pending: number): 'now' | number {
    if (pending <= 0) return this.policy.intervalMs;
    if (this.oldest < 0) this.oldest = this.now();
    if (pending >= this.policy.count) return 'now';
    return Math.max(0, this.oldest + this.policy.intervalMs - this.now());
  }
  /** Everything pending was written. */
  flushed(): void {
    this.oldest = -1;
  }
  due(pending: number): boolean {
    return pending > 0 && (pending >= this.policy.count || (this.oldest >= 0 && this.now() - this.oldest >= this.policy.intervalMs));
  }
}

/**
 * Main-thread ledger: lines accepted, in order, with the completion callback of
 * their message, until the worker acknowledges them as written. Sequence
 * numbers start at 1; ack(upTo) completes every line with seq <= upTo.
 * Bounded by `limit`: offer() refuses a line when the ledger is full.
 */
export class Ledger<D> {
  private lines: string[] = [];
  private ts: number[] = [];
  private dones: D[] = [];
  private head = 0;
  /** seq of lines[head] */
  private headSeq = 1;
  /** next seq to be handed out */
  private nextSeq = 1;
  /** lines with seq < postedSeq were handed to the current worker */
  private postedSeq = 1;

  constructor(readonly limit: number) {}

  get depth(): number {
    return this.nextSeq - this.headSeq;
  }
  get unposted(): number {
    return this.nextSeq - this.postedSeq;
  }
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Accepts a line; returns its seq, or 0 when the ledger is full. */
  offer(line: string, ts: number, done: D): number {
    if (this.depth >= this.limit) return 0;
    this.lines.push(line);
    this.ts.push(ts);
    this.dones.push(done);
    return this.nextSeq++;
  }

  /** Lines not yet handed to the worker: { seq0, lines, ts }. Marks them posted. */
  takeUnposted(): { seq0: number; lines: string[]; ts: number[] } | null {
    if (this.unposted === 0) return null;
    const from = this.head + (this.postedSeq - this.headSeq);
    const out = { seq0: this.postedSeq, lines: this.lines.slice(from), ts: this.ts.slice(from) };
    this.postedSeq = this.nextSeq;
    return out;
  }

  /** After a worker restart nothing unacknowledged is in the worker: post it all again. */
  rewind(): void {
    this.postedSeq = this.headSeq;
  }

  /** Completes lines up to and including seq `upTo`; returns their done callbacks in order. */
  ack(upTo: number): D[] {
    const n = Math.min(upTo, this.nextSeq - 1) - this.headSeq + 1;
    if (n <= 0) return [];
    const done = this.dones.slice(this.head, this.head + n);
    this.head += n;
    this.headSeq += n;
    if (this.postedSeq < this.headSeq) this.postedSeq = this.headSeq;
    if (this.head > 4096 && this.head * 2 > this.lines.length) {
      this.lines = this.lines.slice(this.head);
      this.ts = this.ts.slice(this.head);
      this.dones = this.dones.slice(this.head);
      this.head = 0;
    }
    return done;
  }

  /** Removes and returns everything still unacknowledged (for a last-resort write or failure report). */
  drainAll(): { lines: string[]; ts: number[]; dones: D[] } {
    const out = { lines: this.lines.slice(this.head), ts: this.ts.slice(this.head), dones: this.dones.slice(this.head) };
    this.lines = [];
    this.ts = [];
    this.dones = [];
    this.head = 0;
    this.headSeq = this.nextSeq;
    this.postedSeq = this.nextSeq;
    return out;
  }
}

/**
 * A torn tail: the bytes after the last newline of a journey file, left by a
 * crash or power cut in the middle of a write. Before appending, the writer
 * moves them out of the journey file into `<file>.torn` (the side file), so the
 * journey file stays valid JSONL (jq and line readers stop at, or skip, a bad
 * line; a new record glued onto the fragment would be lost with it) and the
 * fragment is kept for inspection.
 */
export const TORN_SUFFIX = '.torn';

/** Fragments larger than this are not copied out (not a torn journey): they are ended with a newline instead. */
export const TORN_MOVE_MAX_BYTES = 16 * 1024 * 1024;

/**
 * The side-file line that records one torn tail: itself one JSON object per
 * line, so `jq -r .text j.jsonl.torn` shows the fragments. `text` holds the
 * fragment when it is valid UTF-8 (a line torn inside a multi-byte character
 * is not): then `base64` holds the exact bytes instead.
 */
export function tornRecord(fragment: Uint8Array, file: string, offset: number, nowMs: number): string {
  const rec: Record<string, unknown> = { time: new Date(nowMs).toISOString(), file, offset, bytes: fragment.length };
  try {
    rec.text = new TextDecoder('utf-8', { fatal: true }).decode(fragment);
  } catch {
    rec.base64 = Buffer.from(fragment.buffer, fragment.byteOffset, fragment.byteLength).toString('base64');
  }
  return JSON.stringify(rec);
}
