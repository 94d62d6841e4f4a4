// A timeout that does not blame a peer for the event loop's own delay.
//
// A timer that fires late means the event loop was held up (a busy flow, a
// long garbage collection). Whatever the peer sent meanwhile may be waiting in
// the kernel buffer, and is read only a loop turn or two after the timers
// phase (poll, then a thread-pool read). Deciding "no answer" or "silent" at
// that moment is wrong, so such a timer waits one short grace first. A loop
// that ran on time gets no grace: the timeout means what it says.

/** A timer this many ms past its due time counts as held up. */
export const LATE_MS = 2;

export class FairTimer {
  private t: NodeJS.Timeout | null = null;

  /** @param graceMs the one extra wait of a timer that fired late */
  constructor(private readonly graceMs: number) {}

  /** (Re)starts the timer: `fn` runs `ms` from now, or once a grace later if the loop was held up past that. */
  start(ms: number, fn: () => void): void {
    this.stop();
    const due = performance.now() + ms;
    let graced = false;
    const fire = (): void => {
      if (!graced && performance.now() - due > LATE_MS) {
        graced = true;
        this.t = setTimeout(fire, this.graceMs);
        return;
      }
      this.t = null;
      fn();
    };
    this.t = setTimeout(fire, Math.max(0, ms));
  }

  stop(): void {
    if (this.t) clearTimeout(this.t);
    this.t = null;
  }
}
