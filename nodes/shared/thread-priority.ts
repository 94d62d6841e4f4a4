// Raises the calling thread's scheduling priority. On Linux, setpriority() on a
// thread id affects only that thread, so a worker that owns a time-critical
// loop (the HAL, the gate link) can run ahead of the flow engine's thread when
// both want the CPU. Needs root or CAP_SYS_NICE; elsewhere the thread quietly
// keeps the process's priority.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

let applied: number | null | undefined;

/**
 * Asks for niceness `nice` (-20..0; 0 leaves the thread alone) once per
 * thread. Returns the niceness in effect, or null when unchanged.
 */
export function raiseThreadPriority(nice: number): number | null {
  if (applied !== undefined) return applied;
  applied = null;
  if (nice === 0) return null;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) {
      setPriority(tid, nice);
      applied = nice;
    }
  } catch {
    /* not Linux, or not permitted */
  }
  return applied;
}
