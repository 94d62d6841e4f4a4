// One status vocabulary for every rt-* node, throttled per node (the delay
// node's reportDepth idea): the latest status requested is always the one shown
// in the end, intermediate ones are coalesced.
//   set()/clear()  routine updates, at most one per 500 ms.
//   immediate()    errors and state changes: shown at once when the budget
//                  allows, else as soon as it does (newest wins).
// Whatever the mix, no more than 4 status events reach node.status() in any
// 1 s window (checklist item 10), so a 10 kHz burst of bad input cannot flood
// the editor's status channel.
//   green dot   running / connected       yellow ring  connecting
//   red ring    error                     grey ring    stopped / simulated
//   blue dot +N queue depth
import type { NodeStatus } from './red-types';

export type StatusKind = 'ok' | 'connecting' | 'error' | 'stopped' | 'simulated' | 'depth';

const SHAPES: Record<StatusKind, NodeStatus> = {
  ok: { fill: 'green', shape: 'dot' },
  connecting: { fill: 'yellow', shape: 'ring' },
  error: { fill: 'red', shape: 'ring' },
  stopped: { fill: 'grey', shape: 'ring' },
  simulated: { fill: 'grey', shape: 'dot' },
  depth: { fill: 'blue', shape: 'dot' },
};

/** Keep status text under 20 characters (checklist item 10). */
export function shortText(text: string, max = 19): string {
  return text.length <= max ? text : text.slice(0, max - 1) + '…';
}

export function statusOf(kind: StatusKind, text: string): NodeStatus {
  return { ...SHAPES[kind], text: shortText(text) };
}

export interface StatusSink {
  status(s: NodeStatus | Record<string, never>): void;
}

type AnyStatus = NodeStatus | Record<string, never>;

/** Timer functions, injectable so tests can drive a simulated clock. */
export interface StatusTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: StatusTimers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface ThrottleOptions {
  /** Most status events in any window of `windowMs` (default 4 per 1000 ms). */
  maxPerWindow?: number;
  windowMs?: number;
  timers?: StatusTimers;
}

export class ThrottledStatus {
  private last = -Infinity;
  /** Times of the latest emits, oldest first, at most maxPerWindow of them. */
  private readonly recent: number[] = [];
  private pending: AnyStatus | null = null;
  /** The pending status (or one it replaced) was asked for with immediate(). */
  private pendingUrgent = false;
  private timer: unknown = null;
  private timerAt = Infinity;
  private lastKey = '';
  private closed = false;
  private readonly maxPerWindow: number;
  private readonly windowMs: number;
  private readonly timers: StatusTimers;

  constructor(
    private readonly sink: StatusSink,
    private readonly minIntervalMs = 500,
    private readonly now: () => number = Date.now,
    opts: ThrottleOptions = {},
  ) {
    this.maxPerWindow = Math.max(1, opts.maxPerWindow ?? 4);
    this.windowMs = opts.windowMs ?? 1000;
    this.timers = opts.timers ?? realTimers;
  }

  set(kind: StatusKind, text: string): void {
    this.request(statusOf(kind, text), false);
  }

  clear(): void {
    this.request({}, false);
  }

  /**
   * Show a status promptly (errors, state changes): at once if fewer than
   * maxPerWindow statuses were shown in the last window, otherwise as soon as
   * the window allows. The newest request always wins.
   */
  immediate(kind: StatusKind, text: string): void {
    this.request(statusOf(kind, text), true);
  }

  /** Earliest time the next emit may happen. */
  private earliest(urgent: boolean): number {
    const byWindow = this.recent.length < this.maxPerWindow ? -Infinity : this.recent[0] + this.windowMs;
    return urgent ? byWindow : Math.max(byWindow, this.last + this.minIntervalMs);
  }

  private request(s: AnyStatus, urgent: boolean): void {
    if (this.closed) return;
    const key = JSON.stringify(s);
    if (key === this.lastKey) {
      // Already on display and newer than anything pending: nothing to show.
      this.cancelPending();
      return;
    }
    const isUrgent = urgent || (this.pending !== null && this.pendingUrgent);
    const t = this.now();
    const at = this.earliest(isUrgent);
    if (t >= at) {
      this.cancelPending();
      this.emit(s, key, t);
      return;
    }
    this.pending = s;
    this.pendingUrgent = isUrgent;
    this.schedule(at - t);
  }

  private schedule(waitMs: number): void {
    const t = this.now();
    if (this.timer !== null && this.timerAt <= t + waitMs) return;
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timerAt = t + waitMs;
    this.timer = this.timers.setTimeout(() => this.flush(), Math.max(0, Math.ceil(waitMs)));
  }

  private flush(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closed || this.pending === null) return;
    const t = this.now();
    const at = this.earliest(this.pendingUrgent);
    if (t < at) {
      // A timer may fire a little early against the clock: wait the rest.
      this.schedule(at - t);
      return;
    }
    const p = this.pending;
    this.pending = null;
    this.pendingUrgent = false;
    this.emit(p, JSON.stringify(p), t);
  }

  private cancelPending(): void {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
    this.pending = null;
    this.pendingUrgent = false;
  }

  private emit(s: AnyStatus, key: string, t: number): void {
    this.last = t;
    this.recent.push(t);
    if (this.recent.length > this.maxPerWindow) this.recent.shift();
    this.lastKey = key;
    this.sink.status(s);
  }

  /** Stop throttling timers; optionally leave a final status. */
  close(final?: AnyStatus): void {
    this.cancelPending();
    if (final) this.sink.status(final);
    this.closed = true;
  }
}

/** Rate-limits a repeated warning to once per interval and carries a running count. */
export class RateLimitedWarning {
  private lastAt = -Infinity;
  count = 0;
  constructor(
    private readonly warn: (text: string) => void,
    private readonly intervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}
  /** Counts one occurrence; warns if the interval has passed. Returns true if it warned. */
  hit(format: (count: number) => string): boolean {
    this.count++;
    const t = this.now();
    if (t - this.lastAt >= this.intervalMs) {
      this.lastAt = t;
      this.warn(format(this.count));
      return true;
    }
    return false;
  }
}
