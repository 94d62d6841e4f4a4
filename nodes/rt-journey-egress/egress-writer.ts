// The file side of rt-journey-egress: it runs inside the egress worker thread.
// Plain TypeScript with injected fs, clock and timers, so it is unit-tested
// in-process (fake clock, fs stub) and used unchanged by egress.worker.ts.
//
// - Lines stay pending, in order, until written; a failed write is undone
//   (ftruncate to the size before the batch) and retried with backoff, so a
//   line is never half-written nor reordered.
// - One open file descriptor per target file; rotation (the pattern expands to
//   a new name) fsyncs and closes the old file first.
// - fsync policy: 'batch' fsyncs after every flush; 'none' leaves it to the OS,
//   except at rotation and close, which always fsync.
// - Torn tails: whenever a file is opened for appending (start, first write,
//   rotation, reopen after an error) and its last byte is not a newline, the
//   bytes after the last newline are copied to `<file>.torn` (one JSON record,
//   fsynced) and only then cut from the file (ftruncate + fsync), so a new
//   line is never glued onto a fragment, and a crash in between at worst
//   records the fragment twice, never loses it.
import { dirname } from 'node:path';

import { type FlushPolicy, FlushScheduler, formatPath, TORN_MOVE_MAX_BYTES, TORN_SUFFIX, tornRecord } from './egress-core';

export interface FsLike {
  openSync(path: string, flags: string, mode?: number): number;
  writeSync(fd: number, buf: Buffer, offset?: number, length?: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  fstatSync(fd: number): { size: number };
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  ftruncateSync(fd: number, len: number): void;
  mkdirSync(path: string, opts: { recursive: true }): unknown;
}

export interface TimerLike {
  set(fn: () => void, ms: number): unknown;
  clear(h: unknown): void;
}

export interface WriterOptions extends FlushPolicy {
  /** Absolute path pattern (%Y %m %d %H). */
  pattern: string;
  fsync: 'none' | 'batch';
  utc: boolean;
  createDir: boolean;
  /** Retry backoff after a write error. */
  retryInitialMs: number;
  retryMaxMs: number;
  /** A tail longer than this is ended in place instead of moved (default TORN_MOVE_MAX_BYTES). */
  tornMaxBytes?: number;
}

export interface FlushReport {
  upTo: number;
  lines: number;
  bytes: number;
  file: string;
  latencyUs: number;
}

/** A torn tail set apart: `bytes` after byte `offset` of `file`, moved to `to` (or ended in place). */
export interface TornReport {
  file: string;
  bytes: number;
  offset: number;
  to: string;
  how: 'moved' | 'ended';
}

export interface WriterEvents {
  flushed(r: FlushReport): void;
  error(err: NodeJS.ErrnoException, file: string, pending: number, retryInMs: number): void;
  recovered(file: string): void;
  torn?(r: TornReport): void;
}

export class EgressWriter {
  private lines: string[] = [];
  private ts: number[] = [];
  /** seq of lines[0] */
  private seq0 = 1;
  private fd = -1;
  private fdPath = '';
  private timer: unknown = null;
  private retryTimer: unknown = null;
  private retryAttempt = 0;
  private inError = false;
  private closed = false;
  /** Closing: write each batch as it arrives. */
  private urgent = false;
  private readonly sched: FlushScheduler;

  constructor(
    private readonly o: WriterOptions,
    private readonly fs: FsLike,
    private readonly clock: { now(): number; hrUs(): number },
    private readonly timers: TimerLike,
    private readonly ev: WriterEvents,
  ) {
    this.sched = new FlushScheduler({ count: o.count, intervalMs: o.intervalMs }, clock.now);
  }

  get pending(): number {
    return this.lines.length;
  }

  /**
   * Adds lines seq0.. in order. A batch that restarts an earlier sequence (after
   * a host-side rewind) replaces what is pending from that seq on.
   */
  append(seq0: number, lines: string[], ts: number[]): void {
    if (this.closed) return;
    const expected = this.seq0 + this.lines.length;
    if (this.lines.length === 0) {
      this.seq0 = seq0;
    } else if (seq0 !== expected) {
      // Keep what precedes seq0, drop any overlap, then append.
      const keep = Math.max(0, Math.min(this.lines.length, seq0 - this.seq0));
      this.lines.length = keep;
      this.ts.length = keep;
      if (keep === 0) this.seq0 = seq0;
    }
    for (let i = 0; i < lines.length; i++) {
      this.lines.push(lines[i]);
      this.ts.push(ts[i]);
    }
    this.schedule();
  }

  /**
   * Sets apart a torn tail of the file the pattern names now, if that file
   * exists, so it is reported at start. Errors are left to the write path.
   */
  start(): void {
    const file = formatPath(this.o.pattern, this.clock.now(), this.o.utc);
    let fd = -1;
    try {
      // Probe first: opening for append would create a missing file.
      this.fs.closeSync(this.fs.openSync(file, 'r'));
      fd = this.fs.openSync(file, 'a+', 0o644);
    } catch {
      return; // missing (nothing to repair) or unreadable (the first write reports it)
    }
    try {
      this.setApartTornTail(fd, file);
    } catch {
      /* the first write retries and reports it */
    } finally {
      this.fs.closeSync(fd);
    }
  }

  /** The node is closing: from now on every batch is written as soon as it arrives. */
  drain(): void {
    this.urgent = true;
    if (this.inError || this.closed || this.lines.length === 0) return;
    this.clearTimer();
    this.flush();
  }

  private schedule(): void {
    if (this.inError || this.closed) return;
    const d = this.urgent ? 'now' : this.sched.added(this.lines.length);
    if (d === 'now') {
      this.clearTimer();
      this.flush();
    } else if (this.timer === null) {
      this.timer = this.timers.set(() => {
        this.timer = null;
        this.flush();
      }, d);
    }
  }

  private clearTimer(): void {
    if (this.timer !== null) this.timers.clear(this.timer);
    this.timer = null;
  }

  /** Writes everything pending. Returns true when nothing is left pending. */
  flush(final = false): boolean {
    while (this.lines.length > 0) {
      // The run of lines that go to the same file.
      const file = formatPath(this.o.pattern, this.ts[0], this.o.utc);
      let n = 1;
      while (n < this.lines.length && formatPath(this.o.pattern, this.ts[n], this.o.utc) === file) n++;
      if (!this.writeRun(file, n, final)) return false;
    }
    this.sched.flushed();
    return true;
  }

  private openFor(file: string): void {
    if (this.fd >= 0 && this.fdPath === file) return;
    if (this.fd >= 0) {
      // Rotation: make the finished file durable before moving on.
      const old = this.fd;
      this.fd = -1;
      this.fdPath = '';
      try {
        this.fs.fsyncSync(old);
      } finally {
        this.fs.closeSync(old);
      }
    }
    if (this.o.createDir) this.fs.mkdirSync(dirname(file), { recursive: true });
    const fd = this.fs.openSync(file, 'a+', 0o644);
    try {
      this.setApartTornTail(fd, file);
    } catch (e) {
      this.fs.closeSync(fd);
      throw e;
    }
    this.fd = fd;
    this.fdPath = file;
  }

  /**
   * If the file does not end with a newline, moves the bytes after its last
   * newline to `<file>.torn` and cuts them off (see the header). A fragment
   * over TORN_MOVE_MAX_BYTES (not a torn journey: the file is not JSONL) is
   * ended with a newline instead, so nothing is glued onto it either.
   */
  private setApartTornTail(fd: number, file: string): void {
    const size = this.fs.fstatSync(fd).size;
    if (size === 0) return;
    const one = Buffer.alloc(1);
    if (this.fs.readSync(fd, one, 0, 1, size - 1) === 1 && one[0] === 0x0a) return;
    // Find the last newline, reading backwards in chunks.
    const max = this.o.tornMaxBytes ?? TORN_MOVE_MAX_BYTES;
    const chunk = Buffer.alloc(Math.min(size, 64 * 1024));
    let cut = 0;
    let found = false;
    let pos = size;
    while (pos > 0 && size - pos <= max) {
      const n = Math.min(chunk.length, pos);
      pos -= n;
      const got = this.readFully(fd, chunk, n, pos);
      const i = chunk.subarray(0, got).lastIndexOf(0x0a);
      if (i >= 0) {
        cut = pos + i + 1;
        found = true;
        break;
      }
    }
    const bytes = size - cut;
    if (bytes > max) {
      // Not a torn journey (the file is not JSONL?): too big to copy; end it
      // with a newline at `size` so nothing is glued onto it either.
      const nl = Buffer.from('\n');
      this.fs.writeSync(fd, nl, 0, 1);
      this.fs.fsyncSync(fd);
      // bytes: the tail's length, or a lower bound when no newline was found within the limit.
      this.ev.torn?.({ file, bytes: found ? bytes : size - pos, offset: size, to: file, how: 'ended' });
      return;
    }
    const frag = Buffer.alloc(bytes);
    this.readFully(fd, frag, bytes, cut);
    const side = file + TORN_SUFFIX;
    const rec = Buffer.from(tornRecord(frag, file, cut, this.clock.now()) + '\n', 'utf8');
    const sfd = this.fs.openSync(side, 'a', 0o644);
    try {
      let off = 0;
      while (off < rec.length) off += this.fs.writeSync(sfd, rec, off, rec.length - off);
      this.fs.fsyncSync(sfd);
    } finally {
      this.fs.closeSync(sfd);
    }
    this.fs.ftruncateSync(fd, cut);
    this.fs.fsyncSync(fd);
    this.ev.torn?.({ file, bytes, offset: cut, to: side, how: 'moved' });
  }

  private readFully(fd: number, buf: Buffer, n: number, position: number): number {
    let got = 0;
    while (got < n) {
      const r = this.fs.readSync(fd, buf.subarray(got), 0, n - got, position + got);
      if (r <= 0) break;
      got += r;
    }
    return got;
  }

  private writeRun(file: string, n: number, final: boolean): boolean {
    const t0 = this.clock.hrUs();
    let before = -1;
    const text = this.lines.slice(0, n).join('\n') + '\n';
    const buf = Buffer.from(text, 'utf8');
    try {
      this.openFor(file);
      before = this.fs.fstatSync(this.fd).size;
      let off = 0;
      while (off < buf.length) off += this.fs.writeSync(this.fd, buf, off, buf.length - off);
      if (this.o.fsync === 'batch' || final) this.fs.fsyncSync(this.fd);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // Undo a partial write so a retry never leaves half a line.
      if (this.fd >= 0) {
        try {
          if (before >= 0) this.fs.ftruncateSync(this.fd, before);
        } catch {
          /* best effort */
        }
        try {
          this.fs.closeSync(this.fd);
        } catch {
          /* ignore */
        }
      }
      this.fd = -1;
      this.fdPath = '';
      this.failed(err, file, final);
      return false;
    }
    const upTo = this.seq0 + n - 1;
    this.lines.splice(0, n);
    this.ts.splice(0, n);
    this.seq0 = upTo + 1;
    if (this.inError) {
      this.inError = false;
      this.retryAttempt = 0;
      this.ev.recovered(file);
    }
    this.ev.flushed({ upTo, lines: n, bytes: buf.length, file, latencyUs: Math.max(0, this.clock.hrUs() - t0) });
    return true;
  }

  private failed(err: NodeJS.ErrnoException, file: string, final: boolean): void {
    this.inError = true;
    this.clearTimer();
    const delay = Math.min(this.o.retryMaxMs, this.o.retryInitialMs * 2 ** Math.min(this.retryAttempt++, 20));
    this.ev.error(err, file, this.lines.length, final ? 0 : delay);
    if (final || this.closed) return;
    if (this.retryTimer === null) {
      this.retryTimer = this.timers.set(() => {
        this.retryTimer = null;
        if (this.closed) return;
        if (this.flush()) this.inError = false;
      }, delay);
    }
  }

  /**
   * Flushes everything and fsyncs, retrying failed writes until `deadline`
   * (epoch ms). Returns the number of lines that could not be written.
   */
  async close(deadline: number, sleep: (ms: number) => Promise<void>): Promise<number> {
    this.clearTimer();
    if (this.retryTimer !== null) this.timers.clear(this.retryTimer);
    this.retryTimer = null;
    let attempt = 0;
    while (!this.flush(true)) {
      if (this.clock.now() >= deadline) break;
      await sleep(Math.min(this.o.retryMaxMs, this.o.retryInitialMs * 2 ** Math.min(attempt++, 10), Math.max(0, deadline - this.clock.now())));
    }
    this.closed = true;
    if (this.fd >= 0) {
      try {
        this.fs.fsyncSync(this.fd);
      } catch {
        /* reported by the write path */
      }
      try {
        this.fs.closeSync(this.fd);
      } catch {
        /* ignore */
      }
    }
    this.fd = -1;
    return this.lines.length;
  }

  /** Lines still pending, for a last-resort report. */
  pendingLines(): { seq0: number; lines: string[] } {
    return { seq0: this.seq0, lines: [...this.lines] };
  }
}
