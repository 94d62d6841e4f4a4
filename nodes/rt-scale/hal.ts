// The HAL: one interface over the HX711 pins, the data-ready edge and the
// motor PWM, with a simulated, a pigpio and a gpiocdev backend. Created inside
// the HAL worker thread only (pigpio's addon is not context-aware and owns the
// GPIO; the gpiocdev addon is context-aware but one thread owns the pins too).
import { appendFileSync } from 'node:fs';

import { type Clock, RealClock } from './clock';
import type { Hx711Pins } from './hx711-protocol';
import { openGpiocdev } from './hal-gpiocdev';
import { openPigpio, type PigpioHooks } from './hal-pigpio';
import type { HalConfig } from './scale-protocol';
import { type SimChipOptions, SimHx711 } from './sim-hx711';

export interface ScaleHal {
  readonly pins: Hx711Pins;
  readonly clock: Clock;
  /**
   * Calls onEdge(edgeUs, late) on every data-ready (DOUT falling edge), edgeUs
   * on the clock's time base; late: the edge was missed and found afterwards
   * (the read is discarded).
   */
  start(onEdge: (edgeUs: number, late?: boolean) => void): void;
  /** PD_SCK held high (chip off) / released (chip resets and settles). */
  powerDown(): void;
  powerUp(): void;
  /** Motor duty, permille (0 = off). */
  setMotor(permille: number): void;
  /** Releases the pins; the motor is off afterwards. */
  close(): void;
  /** The simulated chip (simulated backend only). */
  readonly sim: SimHx711 | null;
}

class SimHal implements ScaleHal {
  private duty = 0;
  constructor(
    readonly sim: SimHx711,
    readonly clock: Clock,
    private readonly motorTrace?: string,
  ) {}
  get pins(): Hx711Pins {
    return this.sim;
  }
  start(onEdge: (edgeUs: number) => void): void {
    this.sim.start(onEdge);
  }
  powerDown(): void {
    this.sim.powerDown();
  }
  powerUp(): void {
    this.sim.powerUp();
  }
  setMotor(permille: number): void {
    this.sim.setMotor(permille);
    if (this.motorTrace && permille !== this.duty) appendFileSync(this.motorTrace, `${permille}\n`);
    this.duty = permille;
  }
  close(): void {
    this.setMotor(0);
    this.sim.stop();
  }
}

/** The simulated backend on any clock (the worker uses real time; tests and benchmarks also virtual time). */
export function simulatedHal(clock: Clock, opts: Partial<SimChipOptions> = {}, motorTrace?: string): ScaleHal {
  return new SimHal(new SimHx711(clock, opts), clock, motorTrace);
}

export interface OpenOptions {
  /** The scale's name (named in "pin busy" errors). */
  scale: string;
  /** The scale failed after it opened (pigpio backend): its motor is off. */
  onFailure(err: unknown): void;
  hooks?: PigpioHooks;
}

/** Opens a backend. Throws a CodedError (PIGPIO_CODES, GPIOCDEV_CODES, PWM_CODES) when it cannot. */
export function openHal(cfg: HalConfig, o: OpenOptions, clock: Clock = new RealClock()): ScaleHal {
  if (cfg.backend === 'simulated') return simulatedHal(clock, { ...(cfg.sim ?? {}), sps: cfg.sps }, cfg.motorTrace);
  if (cfg.backend === 'gpiocdev') return openGpiocdev(cfg, o.scale, o.onFailure);
  return openPigpio(cfg, o.scale, o.onFailure, o.hooks);
}
