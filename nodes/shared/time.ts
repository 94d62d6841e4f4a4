// The clocks the nodes stamp with, one definition for every thread.

/** Monotonic microseconds (process.hrtime): the same clock in every thread of the process. */
export const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Wall-clock milliseconds with sub-millisecond resolution (performance.timeOrigin + now()). */
export const wallMs = (): number => performance.timeOrigin + performance.now();
