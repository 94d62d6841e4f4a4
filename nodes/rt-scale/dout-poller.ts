// Data-ready without interrupts: the HX711's DOUT polled with synchronous
// reads, from the HAL thread, at a sub-millisecond interval around the moment
// the next conversion is due. No callback of the GPIO library is needed, so
// nothing is delivered on another thread's event loop, and nothing depends on
// sysfs GPIO interrupts (which pigpio cannot set up on kernels >= 6.6).
//
// Why polling is enough: a conversion stays readable for its whole period
// (12.5 ms at 80 SPS, 100 ms at 10 SPS) once DOUT has fallen; what polling
// costs is the time between the fall and the poll that sees it (at most one
// poll interval once the phase is known).
//
// How: after a read, the next data-ready is due one period after the poll
// that saw DOUT low. An event-loop timer (millisecond resolution, may fire
// late) wakes the thread `leadUs` before that; it then polls every `pollUs`
// (sleeping synchronously in between, the CPU idle) for at most `windowUs`.
// Outside the window the thread's event loop runs freely (commands, other
// scales). Without a phase (start, power-up, a window that found nothing) it
// checks DOUT once per timer tick (~1 ms) until it finds one.
//
// A data-ready is "late" (the read is discarded by the engine) when the edge
// may have been so long before the poll that saw DOUT low that the conversion
// may change during the read: the frame must end before the next conversion,
// one period after the edge. The earliest the edge can have been is the later
// of: the last poll that saw DOUT high, and (when the previous data-ready was
// the previous conversion) the previous edge's earliest time plus one period
// less the chip's clock tolerance (CLOCK_TOLERANCE). So one data-ready pinned
// between two polls keeps the phase known even when a window opens late.
// A window whose first poll already sees DOUT low opened too late (the
// thread's timers fire late on this machine): the lead grows by a millisecond
// (up to half a period) and shrinks back slowly while windows open in time.
// Pure: the pins, the time and the sleeps are injected.

export interface PollerIo {
  dout(): 0 | 1;
  /** Monotonic microseconds (the HAL clock's time base). */
  nowUs(): number;
  /** Sleeps synchronously (the thread's event loop waits too). */
  sleepUs(us: number): void;
  /** An event-loop timer; returns a cancel function. */
  timer(ms: number, fn: () => void): () => void;
}

export interface PollerOptions {
  periodUs: number;
  /** Poll interval inside the window, us (sub-millisecond). */
  pollUs: number;
  /** How long before the expected data-ready the window opens, us (covers a late event-loop timer). */
  leadUs: number;
  /** The window's length, us; a window that finds nothing drops the phase. */
  windowUs: number;
  /** The frame's time bound, us (the read must end before the next conversion). */
  maxFrameUs: number;
}

export const DEFAULT_POLLER: Omit<PollerOptions, 'periodUs'> = { pollUs: 200, leadUs: 3000, windowUs: 6000, maxFrameUs: 1000 };

/** Largest gap between a high poll and the low poll after it that still leaves time for a frame (us). */
export function maxGapUs(o: PollerOptions): number {
  return o.periodUs - o.maxFrameUs - 500;
}

/** How far the HX711's conversion period may differ from nominal (its internal oscillator), as a fraction. */
export const CLOCK_TOLERANCE = 0.05;

export class DoutPoller {
  private lastHighUs = NaN;
  private expectUs = NaN;
  /** Earliest time of the last data-ready's edge, and when it was seen. */
  private edgeLower = NaN;
  private lastSeenUs = NaN;
  private lead: number;
  private inTime = 0;
  private cancel: (() => void) | null = null;
  private stopped = true;
  private onReady: ((edgeUs: number, late: boolean) => void) | null = null;
  /** Polls that saw DOUT, windows that found nothing (diagnostics for hw-check). */
  polls = 0;
  emptyWindows = 0;

  constructor(
    private readonly io: PollerIo,
    private readonly o: PollerOptions,
    /** Called when a poll tick throws (a pin read failed): polling stops. */
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {
    this.lead = o.leadUs;
  }

  /** The current lead of the window before the expected data-ready, us (adapts to late timers). */
  get leadUs(): number {
    return this.lead;
  }

  start(onReady: (edgeUs: number, late: boolean) => void): void {
    this.onReady = onReady;
    this.stopped = false;
    this.lastHighUs = NaN;
    this.expectUs = NaN;
    this.edgeLower = NaN;
    this.lastSeenUs = NaN;
    this.arm(0);
  }

  stop(): void {
    this.stopped = true;
    this.cancel?.();
    this.cancel = null;
  }

  private arm(ms: number): void {
    this.cancel?.();
    this.cancel = this.io.timer(ms, () => {
      this.cancel = null;
      try {
        this.tick();
      } catch (err) {
        this.stop();
        this.onError(err);
      }
    });
  }

  /** One timer tick: a window of polls when the phase is known, one poll otherwise. */
  tick(): void {
    if (this.stopped) return;
    const io = this.io;
    const locked = !Number.isNaN(this.expectUs);
    const end = locked ? io.nowUs() + this.lead + (this.o.windowUs - this.o.leadUs) : 0;
    let first = true;
    for (;;) {
      const t = io.nowUs();
      this.polls++;
      if (io.dout() === 0) {
        if (locked) this.adapt(first);
        this.found(t);
        return;
      }
      first = false;
      this.lastHighUs = t;
      if (!locked || t >= end) break;
      io.sleepUs(this.o.pollUs);
    }
    if (locked) {
      this.emptyWindows++;
      this.expectUs = NaN; // lost the phase: search
    }
    this.arm(1);
  }

  private adapt(openedLate: boolean): void {
    if (openedLate) {
      this.lead = Math.min(this.lead + 1000, this.o.periodUs / 2);
      this.inTime = 0;
    } else if (++this.inTime >= 100 && this.lead > this.o.leadUs) {
      this.lead = Math.max(this.o.leadUs, this.lead - 250);
      this.inTime = 0;
    }
  }

  private found(t: number): void {
    const o = this.o;
    let earliest = this.lastHighUs; // NaN when DOUT was never seen high: unknown age, late
    if (t - this.lastSeenUs < 1.5 * o.periodUs) {
      // the previous data-ready was the previous conversion: this edge is about one period after it
      const byPhase = this.edgeLower + o.periodUs * (1 - CLOCK_TOLERANCE);
      if (!Number.isNaN(byPhase) && !(earliest >= byPhase)) earliest = byPhase;
    }
    if (earliest > t) earliest = t;
    const late = !(t - earliest <= maxGapUs(o));
    this.edgeLower = earliest;
    this.lastSeenUs = t;
    const edgeUs = Number.isNaN(earliest) ? t : earliest;
    this.onReady?.(edgeUs, late);
    if (this.stopped) return;
    const io = this.io;
    if (io.dout() === 1) this.lastHighUs = io.nowUs();
    // the next data-ready is at most one period after this one (the edge was at or before t)
    this.expectUs = t + this.o.periodUs;
    const wakeUs = this.expectUs - this.lead;
    this.arm(Math.max(0, Math.floor((wakeUs - io.nowUs()) / 1000)));
  }
}
