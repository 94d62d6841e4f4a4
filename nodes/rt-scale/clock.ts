// Clocks for the simulated backend: real time (the demo and the runtime tests)
// or virtual time (deterministic benchmarks and unit tests). Pure.

export interface Clock {
  /** Monotonic microseconds. */
  nowUs(): number;
  /** Calls fn at atUs (never before it). Returns a cancel function. */
  at(atUs: number, fn: () => void): () => void;
}

import { nowUs } from '../shared/time';

export const hrNowUs = nowUs;

/** A tick wraps at 2^32 microseconds (pigpio's gpioTick is a uint32: every ~71.6 minutes). */
export const TICK_WRAP = 4294967296;

/**
 * Microseconds from tick a to tick b (b taken after a), in 32-bit unsigned
 * arithmetic: right across the wrap at 2^32 and across 2^31, where pigpio's own
 * tickDiff (`(b >> 0) - (a >> 0)`) goes wrong: 0x7fffffff -> 0x80000001 is 2,
 * not -4294967294. Valid for intervals shorter than 2^32 us.
 */
export const tickDiff32 = (a: number, b: number): number => (b - a) >>> 0;

/** Signed distance from tick a to tick b (negative: b is before a), valid within +-2^31 us (~35 min). */
export const tickDelta32 = (a: number, b: number): number => (b - a) | 0;

/**
 * Real time. A libuv timer has millisecond resolution and may fire up to a
 * millisecond early or late; `at` never calls early: when the timer fires
 * before atUs it yields with setImmediate until atUs has passed (at most about
 * a millisecond, without blocking the thread's event loop).
 */
export class RealClock implements Clock {
  nowUs(): number {
    return hrNowUs();
  }

  at(atUs: number, fn: () => void): () => void {
    let cancelled = false;
    let imm: NodeJS.Immediate | null = null;
    const check = (): void => {
      imm = null;
      if (cancelled) return;
      if (hrNowUs() >= atUs) fn();
      else imm = setImmediate(check);
    };
    const t = setTimeout(check, Math.max(0, Math.floor((atUs - hrNowUs()) / 1000)));
    return () => {
      cancelled = true;
      clearTimeout(t);
      if (imm) clearImmediate(imm);
    };
  }
}

/** Virtual time: nothing happens until advance() is called. Deterministic order (time, then insertion). */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private queue: Array<{ at: number; seq: number; fn: () => void; live: boolean }> = [];

  constructor(startUs = 0) {
    this.t = startUs;
  }

  nowUs(): number {
    return this.t;
  }

  at(atUs: number, fn: () => void): () => void {
    const ev = { at: Math.max(atUs, this.t), seq: this.seq++, fn, live: true };
    // insertion keeps the queue sorted (short queues: a few timers per scale)
    let i = this.queue.length;
    while (i > 0 && (this.queue[i - 1].at > ev.at || (this.queue[i - 1].at === ev.at && this.queue[i - 1].seq > ev.seq))) i--;
    this.queue.splice(i, 0, ev);
    return () => {
      ev.live = false;
    };
  }

  /** Runs every event due up to toUs, in order, then sets the time to toUs. */
  advanceTo(toUs: number): void {
    while (this.queue.length > 0 && this.queue[0].at <= toUs) {
      const ev = this.queue.shift()!;
      this.t = ev.at;
      if (ev.live) ev.fn();
    }
    if (toUs > this.t) this.t = toUs;
  }
}
