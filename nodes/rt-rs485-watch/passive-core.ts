// Passive mode: the door controller pushes frames on its own. Frames are cut
// out of the byte stream by a delimiter or by an inter-byte gap, and mapped to
// a door state by two regular expressions over the frame's text (latin1) or
// hex form. Pure: the caller feeds bytes with their arrival time and calls
// `tick` when the gap timer fires.
import type { DoorState } from './watch-core';

export type FramingMode = 'delimiter' | 'timeout';
export type FrameEncoding = 'text' | 'hex';

export interface FramerOptions {
  mode: FramingMode;
  /** delimiter mode: the bytes that end a frame (not part of it) */
  delimiter: Buffer;
  /** timeout mode: a gap this long (ms) ends a frame */
  gapMs: number;
  /** longer frames are dropped as garbage (and the framer resyncs) */
  maxLength: number;
}

/** Turns a string with \n, \r, \t, \xHH escapes into bytes. */
export function unescapeBytes(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) {
      const n = s[i + 1];
      if (n === 'n') (out.push(10), i++);
      else if (n === 'r') (out.push(13), i++);
      else if (n === 't') (out.push(9), i++);
      else if (n === '0') (out.push(0), i++);
      else if (n === '\\') (out.push(92), i++);
      else if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
        out.push(parseInt(s.slice(i + 2, i + 4), 16));
        i += 3;
      } else out.push(c.charCodeAt(0) & 0xff);
    } else out.push(c.charCodeAt(0) & 0xff);
  }
  return Buffer.from(out);
}

export type FramerEvent = { frame: Buffer } | { garbage: number };

/**
 * Cuts frames out of a byte stream. In delimiter mode every delimiter ends a
 * frame (so a frame split across reads and several frames in one read both
 * come out whole and in order); empty frames (e.g. the LF of CRLF-delimited
 * text when the delimiter is CR) are skipped. In timeout mode the bytes
 * received with no gap of `gapMs` between them form one frame.
 */
export class Framer {
  private buf: Buffer = Buffer.alloc(0);
  private lastAt = 0;

  constructor(private readonly opt: FramerOptions) {
    if (opt.mode === 'delimiter' && opt.delimiter.length === 0) throw new RangeError('empty delimiter');
  }

  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Uint8Array, now: number): FramerEvent[] {
    const ev: FramerEvent[] = [];
    if (this.opt.mode === 'timeout') {
      if (this.buf.length > 0 && now - this.lastAt >= this.opt.gapMs) ev.push(...this.cut());
      this.lastAt = now;
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
      if (this.buf.length > this.opt.maxLength) {
        ev.push({ garbage: this.buf.length });
        this.buf = Buffer.alloc(0);
      }
      return ev;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const d = this.opt.delimiter;
    let start = 0;
    for (;;) {
      const at = this.buf.indexOf(d, start);
      if (at < 0) break;
      const f = this.buf.subarray(start, at);
      if (f.length > this.opt.maxLength) ev.push({ garbage: f.length });
      else if (f.length > 0) ev.push({ frame: Buffer.from(f) });
      start = at + d.length;
    }
    this.buf = Buffer.from(this.buf.subarray(start));
    if (this.buf.length > this.opt.maxLength) {
      // no delimiter in sight: drop, and resync at the next delimiter
      ev.push({ garbage: this.buf.length });
      this.buf = Buffer.alloc(0);
    }
    return ev;
  }

  /** Timeout mode: call when `gapMs` may have passed since the last byte. */
  tick(now: number): FramerEvent[] {
    if (this.opt.mode !== 'timeout' || this.buf.length === 0 || now - this.lastAt < this.opt.gapMs) return [];
    return this.cut();
  }

  /** Time (ms from now) at which `tick` may cut a frame, or -1 if nothing is pending. */
  dueIn(now: number): number {
    if (this.opt.mode !== 'timeout' || this.buf.length === 0) return -1;
    return Math.max(0, this.lastAt + this.opt.gapMs - now);
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
  }

  private cut(): FramerEvent[] {
    const f = this.buf;
    this.buf = Buffer.alloc(0);
    return f.length ? [{ frame: f }] : [];
  }
}

export interface FrameMapping {
  encoding: FrameEncoding;
  open: RegExp;
  closed: RegExp;
}

export function compileMapping(encoding: FrameEncoding, open: string, closed: string): FrameMapping {
  return { encoding, open: new RegExp(open), closed: new RegExp(closed) };
}

/** The text the mapping patterns are matched against: latin1 text (trimmed) or lowercase hex. */
export function frameText(frame: Uint8Array, encoding: FrameEncoding): string {
  return encoding === 'hex' ? Buffer.from(frame).toString('hex') : Buffer.from(frame).toString('latin1').trim();
}

/** The state a frame stands for, or null if it matches neither pattern. `open` is tested first. */
export function mapFrame(frame: Uint8Array, m: FrameMapping): Exclude<DoorState, 'unknown'> | null {
  const t = frameText(frame, m.encoding);
  if (m.open.test(t)) return 'open';
  if (m.closed.test(t)) return 'closed';
  return null;
}
