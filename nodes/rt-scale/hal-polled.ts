// What every real-pin backend shares (pigpio, gpiocdev): data-ready found by
// polling DOUT with synchronous reads (dout-poller.ts), the guarded frame
// read (hx711-protocol.ts readFrame drives this object's Hx711Pins), the
// optional heartbeat pin toggled on every data-ready, and one scale's failure
// stopping that scale only (its motor off). A backend supplies the pin
// primitives, the tick and the motor.
import { CodedError } from '../shared/coded';
import { type Clock, RealClock, hrNowUs } from './clock';
import { DEFAULT_POLLER, DoutPoller, type PollerIo } from './dout-poller';
import type { Hx711Pins } from './hx711-protocol';
import type { ScaleHal } from './hal';

export const firstLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0];

/** Sleeps synchronously, sub-millisecond (Atomics.wait on a private cell: nothing wakes it early). */
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
export const sleepUs = (us: number): void => {
  Atomics.wait(sleepCell, 0, 0, us / 1000);
};

export abstract class PolledHal implements ScaleHal, Hx711Pins {
  readonly sim = null;
  readonly clock: Clock = new RealClock();
  private beat = 0;
  private readonly poller: DoutPoller;
  protected closed = false;
  private failed = false;
  private ready: ((edgeUs: number, late: boolean) => void) | null = null;

  constructor(
    sps: 10 | 80,
    private readonly onFailure: (err: unknown) => void,
    io?: Partial<PollerIo>,
  ) {
    const pollerIo: PollerIo = {
      dout: () => this.dout(),
      nowUs: hrNowUs,
      sleepUs,
      timer: (ms, fn) => {
        const t = setTimeout(fn, ms);
        return () => clearTimeout(t);
      },
      ...io,
    };
    this.poller = new DoutPoller(pollerIo, { ...DEFAULT_POLLER, periodUs: sps === 80 ? 12_500 : 100_000 }, (err) => this.fail(err));
  }

  /** DOUT's level (may throw: the scale then fails). */
  protected abstract readDout(): number;
  protected abstract writeSck(level: 0 | 1): void;
  /** The heartbeat pin, when the scale has one. */
  protected abstract writeHeartbeat(level: 0 | 1): void;
  protected abstract get hasHeartbeat(): boolean;
  /** Frees the pins (and PWM) after close has stopped the motor. */
  protected abstract releasePins(): void;
  /** A free-running uint32 microsecond tick. */
  abstract tick(): number;
  abstract setMotor(permille: number): void;

  get pins(): Hx711Pins {
    return this;
  }

  // Hx711Pins: the guard in hx711-protocol.ts takes tick() before each rising edge and after each falling edge
  dout(): 0 | 1 {
    try {
      return this.readDout() ? 1 : 0;
    } catch (err) {
      // also reached from the engine's watchdog timer: this scale fails, the thread does not
      this.fail(err);
      return 1;
    }
  }
  sckHigh(): 0 | 1 {
    this.writeSck(1);
    return this.dout();
  }
  sckLow(): void {
    this.writeSck(0);
  }

  start(onEdge: (edgeUs: number, late?: boolean) => void): void {
    this.ready = (edgeUs, late) => {
      if (this.closed) return;
      if (this.hasHeartbeat) this.writeHeartbeat((this.beat ^= 1) as 0 | 1);
      try {
        onEdge(edgeUs, late);
      } catch (err) {
        this.fail(err);
      }
    };
    this.poller.start(this.ready);
  }

  /** One scale's failure (a pin read that throws, a bug in its engine): its motor stops, the others go on. */
  protected fail(err: unknown): void {
    if (this.closed || this.failed) return;
    this.failed = true;
    this.poller.stop();
    try {
      this.setMotor(0);
    } catch {
      /* reported below */
    }
    this.onFailure(new CodedError('hal-failed', { error: firstLine(err) }));
  }

  powerDown(): void {
    this.poller.stop();
    this.writeSck(1);
  }
  powerUp(): void {
    this.writeSck(0);
    if (this.ready && !this.closed) this.poller.start(this.ready); // the chip restarts: find its phase again
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.stop();
    try {
      this.setMotor(0);
      this.writeSck(0);
      if (this.hasHeartbeat) this.writeHeartbeat(0); // the monostable runs out: the driver is disabled
    } finally {
      this.releasePins();
    }
  }
}
