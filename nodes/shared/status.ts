// One status vocabulary for every rt-* node, throttled to at most 2 updates
// per second per node (the delay node's reportDepth idea): the latest status is
// always the one shown, intermediate ones are coalesced.
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

export class ThrottledStatus {
  private last = 0;
  private pending: NodeStatus | Record<string, never> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastKey = '';
  private closed = false;

  constructor(
    private readonly sink: StatusSink,
    private readonly minIntervalMs = 500,
    private readonly now: () => number = Date.now,
  ) {}

  set(kind: StatusKind, text: string): void {
    this.push(statusOf(kind, text));
  }

  clear(): void {
    this.push({});
  }

  /** Show a status now, bypassing the throttle (used for errors and close). */
  immediate(kind: StatusKind, text: string): void {
    if (this.closed) return;
    const s = statusOf(kind, text);
    this.pending = null;
    this.emit(s);
  }

  private push(s: NodeStatus | Record<string, never>): void {
    if (this.closed) return;
    const key = JSON.stringify(s);
    if (key === this.lastKey && this.pending === null) return;
    const t = this.now();
    if (t - this.last >= this.minIntervalMs && this.timer === null) {
      this.emit(s);
      return;
    }
    this.pending = s;
    if (this.timer === null) {
      const wait = Math.max(0, this.minIntervalMs - (t - this.last));
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.pending !== null && !this.closed) {
          const p = this.pending;
          this.pending = null;
          this.emit(p);
        }
      }, wait);
      this.timer.unref?.();
    }
  }

  private emit(s: NodeStatus | Record<string, never>): void {
    this.last = this.now();
    this.lastKey = JSON.stringify(s);
    this.sink.status(s);
  }

  /** Stop throttling timers; optionally leave a final status. */
  close(final?: NodeStatus | Record<string, never>): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pending = null;
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
