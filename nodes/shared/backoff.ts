// The reconnect delay of every link that retries (gate TCP link, MQTT ingress,
// journey outbox) and of worker restarts (worker-host.ts backoffDelay, which
// adds its reset after a stable run): doubling from min, capped at max, with
// +-20 % jitter so that many clients do not retry in step. Pure.

/** Delay before reconnect attempt `attempt` (0-based): min*2^attempt capped at max, +-20 % jitter. */
export function reconnectDelay(attempt: number, minMs: number, maxMs: number, rnd: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return Math.max(0, Math.round(base * (0.8 + 0.4 * rnd())));
}
