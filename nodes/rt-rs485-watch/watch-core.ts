// The door state as a watch value: the latest observation is always readable,
// and every change is reported (the newest overwrites, the change is never
// coalesced away). Pure: the clock is passed in.
import { type Coded, coded, type Msg } from '../shared/coded';

export type DoorState = 'open' | 'closed' | 'unknown';

/**
 * Codes of the reasons a door is unknown (catalog rt-rs485-watch.codes.<code>),
 * from this module and door-readers.ts; the modbus exception names are
 * MODBUS_EXCEPTION_CODES, the link's reasons LINK_CODES.
 */
export const WATCH_REASONS = [
  'not-read',
  'unknown',
  'unexpected-value',
  'no-answer-for',
  'port-unavailable',
  'unknown-error',
  'bad-crc',
  'no-answer-within',
  'request-failed',
  'request-error',
  'no-answer',
  'no-frame-for',
] as const;
export type WatchReason = (typeof WATCH_REASONS)[number];
export const reason = (code: WatchReason, params?: Coded['params']): Coded => coded(code, params);

/** The door as a watch value; the core keeps the reason as a Msg (coded, or a verbatim port error), the adapter publishes it as text (R = string). */
export interface DoorValue<R = Msg> {
  state: DoorState;
  /** epoch ms at which the state became what it is */
  since: number;
  /** epoch ms of the latest observation that confirmed it */
  ts: number;
  /** why the state is unknown */
  reason?: R;
}

export class DoorWatch {
  private cur: DoorValue;
  changes = 0;

  constructor(now: number, reason: Msg = coded('not-read')) {
    this.cur = { state: 'unknown', since: now, ts: now, reason };
  }

  get value(): DoorValue {
    return { ...this.cur };
  }

  /**
   * Records an observation. Returns the new value if the state changed (for
   * `unknown`, a new reason is not a change), else null; `ts` moves either way.
   */
  observe(state: DoorState, now: number, why?: Msg): DoorValue | null {
    const prev = this.cur;
    if (state === prev.state) {
      this.cur = state === 'unknown' ? { ...prev, ts: now, reason: why ?? prev.reason } : { state, since: prev.since, ts: now };
      return null;
    }
    this.cur = state === 'unknown' ? { state, since: now, ts: now, reason: why ?? reason('unknown') } : { state, since: now, ts: now };
    this.changes++;
    return this.value;
  }
}

export interface RegisterMapping {
  /** value of the input (bit or register) that means open */
  openValue: number;
  /** value that means closed; for 0x02 the other bit value */
  closedValue: number;
}

/** Maps a polled input value to a state; a register value that is neither is `unknown`. */
export function mapValue(value: number, m: RegisterMapping): { state: DoorState; reason?: Coded } {
  if (value === m.openValue) return { state: 'open' };
  if (value === m.closedValue) return { state: 'closed' };
  return { state: 'unknown', reason: reason('unexpected-value', { value }) };
}

/**
 * The stall cap of polling: a stretch of failed reads starts with the first
 * request sent after the last good answer; once it has lasted `stallMs` with
 * no good answer, the state is unknown (with the last failure as reason). So a
 * single lost reply does not flap the state, and a silent or broken peer
 * costs at most `stallMs` (plus one poll period) before it shows.
 */
export class StallGuard {
  private start: number | null = null;
  private why: Msg | null = null;
  constructor(readonly stallMs: number) {}
  /** A request goes out; returns true if it starts a new stretch (arm the timer). */
  sent(now: number): boolean {
    if (this.start !== null) return false;
    this.start = now;
    return true;
  }
  good(): void {
    this.start = null;
    this.why = null;
  }
  /** Records a failure; returns the reason to report if the cap is reached. */
  bad(now: number, why: Msg): Msg | null {
    this.why = why;
    if (this.start === null) this.start = now;
    return now - this.start >= this.stallMs ? why : null;
  }
  /** The stall timer fired: the reason if the cap is reached, else null. */
  check(now: number): Msg | null {
    if (this.start === null || now - this.start < this.stallMs) return null;
    return this.why ?? reason('no-answer-for', { ms: this.stallMs });
  }
  /** ms until the cap is reached, or -1 if no stretch is running. */
  dueIn(now: number): number {
    return this.start === null ? -1 : Math.max(0, this.start + this.stallMs - now);
  }
}
