// The motor stops on every exit the flow engine's thread can see, whatever
// closes or does not close the flows first:
// - process 'exit' (process.exit() after an uncaught exception, which
//   Node-RED answers with process.exit(1) without closing the flows; or any
//   other exit): every running scale gets 'all-off' and this thread waits, at
//   most 50 ms, on a shared counter until each HAL instance has stopped its
//   motor (the HAL thread runs on while this one waits);
// - SIGTERM/SIGINT/SIGHUP: the pigpio C library installs its own handlers for
//   them in gpioInitialise (they call gpioTerminate and exit() without running
//   any JS, so Node-RED never closes its flows and hardware PWM keeps its
//   duty). libuv installs its handler for a signal when the first JS listener
//   is added and removes it when the last is removed, so removing and adding
//   the process's own listeners again after pigpio has initialised puts Node's
//   handler back (rearmSignals). The pigpio npm package offers no way to ask
//   for PI_CFG_NOSIGHANDLER (gpioCfgSetInternals is not exported).
// - a motor on the kernel PWM (gpiocdev backend) is also written off from this
//   thread (sysfs, synchronous), before the HAL thread is even asked.
// One guard per process (module state), as there is one HAL thread per process.

import { pwmOffSync } from './kernel-pwm';

export interface ExitTarget {
  /** Posts 'all-off' to the scale's HAL instance; false if it could not (not running). */
  allOff(): boolean;
  /**
   * A motor on the kernel PWM (gpiocdev backend): its sysfs channel directory, or null. The exit path
   * writes it off itself, synchronously (nothing asynchronous runs on exit), whatever the HAL thread does.
   */
  kernelPwm?(): string | null;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const targets = new Set<ExitTarget>();
let ack: Int32Array | null = null;
/** Set by the guard's own signal handler, which stops the motors and then exits at once: the 'exit' listener need not stop them (and wait) again. */
let stoppedForExit = false;

function ensure(): Int32Array {
  if (!ack) {
    ack = new Int32Array(new SharedArrayBuffer(4));
    process.on('exit', () => {
      if (!stoppedForExit) stopAllNow();
    });
  }
  return ack;
}

/** The counter the HAL adds to after each 'all-off' (passed to the HAL in ScaleInit.exitAck). */
export function exitAckBuffer(): SharedArrayBuffer {
  return ensure().buffer as SharedArrayBuffer;
}

/** Registers a running scale; returns its deregistration. */
export function guardExit(t: ExitTarget): () => void {
  ensure();
  targets.add(t);
  return () => targets.delete(t);
}

/** Stops every registered motor now and waits (synchronously, at most timeoutMs) for the HAL's acknowledgements. Returns how many acknowledged. */
export function stopAllNow(timeoutMs = 50): number {
  const a = ensure();
  const before = Atomics.load(a, 0);
  let asked = 0;
  for (const t of targets) {
    const dir = t.kernelPwm?.();
    if (dir) pwmOffSync(dir);
    try {
      if (t.allOff()) asked++;
    } catch {
      /* a closed port: that scale has already stopped its motor on close */
    }
  }
  const end = Date.now() + timeoutMs;
  for (;;) {
    const now = Atomics.load(a, 0);
    if (now - before >= asked) return now - before;
    const left = end - Date.now();
    if (left <= 0) return now - before;
    Atomics.wait(a, 0, now, left);
  }
}

/** Signals for which this guard added a listener itself (nobody else listened). */
const own = new Map<NodeJS.Signals, () => void>();
/** The first listener of each signal once pigpio runs: motors off before anything else runs (Node-RED then closes its flows). */
const first = new Map<NodeJS.Signals, () => void>();

/**
 * After pigpio has initialised (its C handlers replaced Node's): re-registers
 * Node's handlers for SIGINT/SIGTERM/SIGHUP by removing and re-adding the
 * process's listeners, with one that stops every motor at once in front of
 * them. Where nobody listens, adds one that stops the motors and exits with
 * the signal's conventional code (what the default action would have done,
 * motor off first).
 */
export function rearmSignals(): void {
  for (const sig of SIGNALS) {
    const ls = process.rawListeners(sig) as Array<(...a: unknown[]) => void>;
    if (ls.length === 0) {
      const fn = (): void => {
        stopAllNow();
        stoppedForExit = true;
        process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
      };
      own.set(sig, fn);
      process.on(sig, fn);
      continue;
    }
    for (const l of ls) process.removeListener(sig, l);
    let stop = first.get(sig);
    if (!stop) {
      stop = (): void => void stopAllNow();
      first.set(sig, stop);
    }
    // motors off first (at most 50 ms), then the process's own handlers (Node-RED closes its flows)
    process.on(sig, stop);
    for (const l of ls) if (l !== stop) process.on(sig, l);
  }
}
