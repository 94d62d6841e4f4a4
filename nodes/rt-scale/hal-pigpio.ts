// The pigpio backend (Raspberry Pi). Loaded lazily, only in the HAL worker:
// pigpio is an optional dependency, its addon is not context-aware, one
// process per Pi may use it, and it needs root.
// Data-ready is a pigpio *interrupt* on DOUT's falling edge (~50 us to react;
// pigpio *alerts* arrive in 1 ms batches, too slow). The frame is bit-banged
// from this thread with the guard in hx711-protocol.ts. The motor uses
// hardware PWM on GPIO 12/13/18/19, software PWM elsewhere.
import { CodedError } from '../shared/coded';
import { type Clock, RealClock, hrNowUs } from './clock';
import type { Hx711Pins } from './hx711-protocol';
import type { ScaleHal } from './hal';
import type { HalConfig } from './scale-protocol';

interface PigpioGpio {
  digitalRead(): number;
  digitalWrite(level: number): void;
  hardwarePwmWrite(freq: number, duty: number): void;
  pwmFrequency(freq: number): void;
  pwmWrite(duty: number): void;
  on(ev: 'interrupt', fn: (level: number, tick: number) => void): void;
  removeAllListeners(): void;
  enableInterrupt(edge: number): void;
  disableInterrupt(): void;
}
interface PigpioModule {
  Gpio: { new (pin: number, o: object): PigpioGpio; INPUT: number; OUTPUT: number; FALLING_EDGE: number; PUD_OFF: number };
  getTick(): number;
  tickDiff(a: number, b: number): number;
  initialize(): void;
  terminate(): void;
}

const HW_PWM_PINS = new Set([12, 13, 18, 19]);

/**
 * Codes of the errors opening the pigpio backend (catalog rt-scale.codes.<code>;
 * each text tells the user to pick the simulated backend): the module is
 * missing, pigpio failed to initialise, the pins could not be opened. Param
 * `error` is the first line of pigpio's own message.
 */
export const PIGPIO_CODES = ['pigpio-missing', 'pigpio-init', 'pigpio-gpio'] as const;
const firstLine = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0];
let users = 0;

function load(name: string): PigpioModule {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as PigpioModule;
  } catch (e) {
    throw new CodedError('pigpio-missing', { error: firstLine(e) });
  }
}

class PigpioHal implements ScaleHal, Hx711Pins {
  readonly sim = null;
  readonly clock: Clock = new RealClock();
  private readonly doutPin: PigpioGpio;
  private readonly sck: PigpioGpio;
  private readonly motor: PigpioGpio;
  private highAt = 0;
  /** Edges before the end of the last frame are the frame's own bit transitions. */
  private lastReadEndTick = 0;
  private closed = false;

  constructor(
    private readonly pg: PigpioModule,
    private readonly cfg: HalConfig,
  ) {
    const G = pg.Gpio;
    this.doutPin = new G(cfg.doutPin, { mode: G.INPUT, pullUpDown: G.PUD_OFF });
    this.sck = new G(cfg.sckPin, { mode: G.OUTPUT });
    this.sck.digitalWrite(0);
    this.motor = new G(cfg.motorPin, { mode: G.OUTPUT });
    this.setMotor(0);
  }

  get pins(): Hx711Pins {
    return this;
  }

  // Hx711Pins
  dout(): 0 | 1 {
    return this.doutPin.digitalRead() ? 1 : 0;
  }
  sckHigh(): 0 | 1 {
    this.sck.digitalWrite(1);
    this.highAt = hrNowUs();
    return this.dout();
  }
  sckLow(): number {
    this.sck.digitalWrite(0);
    const h = hrNowUs() - this.highAt;
    this.lastReadEndTick = this.pg.getTick();
    return h;
  }

  start(onEdge: (edgeUs: number) => void): void {
    this.doutPin.on('interrupt', (level, tick) => {
      if (this.closed || level !== 0) return;
      if (this.pg.tickDiff(this.lastReadEndTick, tick) <= 0) return; // a bit transition of the last frame
      const ageUs = this.pg.tickDiff(tick, this.pg.getTick());
      onEdge(hrNowUs() - ageUs);
    });
    this.doutPin.enableInterrupt(this.pg.Gpio.FALLING_EDGE);
  }

  powerDown(): void {
    this.sck.digitalWrite(1);
  }
  powerUp(): void {
    this.sck.digitalWrite(0);
  }

  setMotor(permille: number): void {
    const p = Math.max(0, Math.min(1000, Math.round(permille)));
    if (HW_PWM_PINS.has(this.cfg.motorPin)) this.motor.hardwarePwmWrite(this.cfg.motorHz, p * 1000);
    else {
      this.motor.pwmFrequency(this.cfg.motorHz);
      this.motor.pwmWrite(Math.round((p * 255) / 1000));
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.setMotor(0);
      this.doutPin.disableInterrupt();
      this.doutPin.removeAllListeners();
      this.sck.digitalWrite(0);
    } finally {
      if (--users === 0) this.pg.terminate();
    }
  }
}

export function openPigpio(cfg: HalConfig): ScaleHal {
  const pg = load(cfg.pigpioModule || 'pigpio');
  try {
    if (users === 0) pg.initialize();
    users++;
  } catch (e) {
    throw new CodedError('pigpio-init', { error: firstLine(e) });
  }
  try {
    return new PigpioHal(pg, cfg);
  } catch (e) {
    if (--users === 0) pg.terminate();
    throw new CodedError('pigpio-gpio', { dout: cfg.doutPin, sck: cfg.sckPin, motor: cfg.motorPin, error: firstLine(e) });
  }
}
