// When the messaging hooks are on. Messaging hooks cost every message in the
// runtime whatever they do, so by default per-node timing runs in sampling
// windows: the hooks are added for `windowMs`, then removed, every `periodMs`
// (the first window opens at start). `continuous` keeps them on (debugging).
// Also drives the reporting interval. Pure: timers are injected.

export type Mode = 'sampling' | 'continuous' | 'off';
export const MODES: readonly Mode[] = ['sampling', 'continuous', 'off'];

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(t: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    t.unref?.();
    return t;
  },
  clearInterval: (t) => clearInterval(t as NodeJS.Timeout),
};

export interface SchedulerOptions {
  mode: Mode;
  windowMs: number;
  periodMs: number;
  intervalMs: number;
  /** Add the hooks. */
  attach(): void;
  /** Remove the hooks. */
  detach(): void;
  /** A reporting interval has passed. */
  tick(): void;
  timers?: Timers;
}

export class WindowScheduler {
  private readonly t: Timers;
  private windowTimer: unknown = null;
  private periodTimer: unknown = null;
  private tickTimer: unknown = null;
  private stopped = false;
  /** True while the hooks are attached. */
  active = false;
  /** Windows opened so far. */
  windows = 0;

  constructor(private readonly o: SchedulerOptions) {
    this.t = o.timers ?? realTimers;
    if (o.mode === 'sampling' && !(o.windowMs > 0 && o.windowMs <= o.periodMs)) {
      throw new RangeError('sampling window must be > 0 and <= its period');
    }
  }

  start(): void {
    if (this.o.mode === 'continuous') this.open();
    else if (this.o.mode === 'sampling') {
      this.open();
      this.periodTimer = this.t.setInterval(() => this.open(), this.o.periodMs);
    }
    this.tickTimer = this.t.setInterval(() => {
      if (!this.stopped) this.o.tick();
    }, this.o.intervalMs);
  }

  private open(): void {
    if (this.stopped) return;
    if (!this.active) {
      this.active = true;
      this.windows++;
      this.o.attach();
    }
    if (this.o.mode === 'sampling' && this.o.windowMs < this.o.periodMs) {
      if (this.windowTimer !== null) this.t.clearTimeout(this.windowTimer);
      this.windowTimer = this.t.setTimeout(() => {
        this.windowTimer = null;
        this.close();
      }, this.o.windowMs);
    }
  }

  private close(): void {
    if (!this.active) return;
    this.active = false;
    this.o.detach();
  }

  stop(): void {
    this.stopped = true;
    for (const t of [this.windowTimer]) if (t !== null) this.t.clearTimeout(t);
    for (const t of [this.periodTimer, this.tickTimer]) if (t !== null) this.t.clearInterval(t);
    this.windowTimer = this.periodTimer = this.tickTimer = null;
    this.close();
  }
}
