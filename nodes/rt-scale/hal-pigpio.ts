// The pigpio backend (Raspberry Pi 1-4). Loaded lazily, only in the HAL
// worker: pigpio is an optional dependency, and its addon is used here so
// that none of its pitfalls can bite (evidence from fivdi/pigpio 3.3.1, see
// docs/hardware.md "Why pigpio is used this way"):
// - No pigpio callback at all. The addon queues interrupt and alert callbacks
//   on uv_default_loop(), the process's MAIN loop, whatever thread registered
//   them (src/pigpio.cc, GpioISR_t/GpioAlert_t), and its sysfs interrupts fail
//   on kernels >= 6.6. Data-ready is found by polling DOUT with synchronous
//   reads (dout-poller.ts); the frame is bit-banged from this thread.
// - Loaded once per process, in the one HAL thread, which is then kept for the
//   life of the process (onLoaded: the host pins the worker). The addon is not
//   context-aware (NODE_MODULE, not NODE_MODULE_INIT): a second thread that
//   requires it gets pigpio.js's empty fallback and `gpioInitialise is not a
//   function`. pigpio stays initialised while the thread lives; scales come
//   and go on it.
// - The socket (port 8888, every interface) and FIFO interfaces, and the alert
//   thread we do not use, are switched off before initialising
//   (configureInterfaces: PI_DISABLE_FIFO_IF | PI_DISABLE_SOCK_IF | PI_DISABLE_ALERT).
// - Ticks are compared in 32-bit arithmetic (clock.ts tickDiff32), never with
//   pigpio's tickDiff, which is wrong across 2^31.
// - The motor uses hardware PWM on GPIO 12/13/18/19, software PWM elsewhere.
//   12/18 share PWM channel 0 and 13/19 channel 1: two scales on one channel
//   are refused, as are two scales on one pin.
// - An optional heartbeat pin toggles on every good poll of the data-ready:
//   wired through a retriggerable monostable to the motor driver's enable, it
//   stops the motor in hardware when this thread stops (docs/hardware.md).
import { CodedError } from '../shared/coded';
import type { PollerIo } from './dout-poller';
import type { ScaleHal } from './hal';
import { firstLine, PolledHal } from './hal-polled';
import type { HalConfig } from './scale-protocol';

/** The part of the pigpio npm package (3.x) this backend uses. */
export interface PigpioGpio {
  digitalRead(): number;
  digitalWrite(level: number): void;
  hardwarePwmWrite(freq: number, duty: number): void;
  pwmFrequency(freq: number): void;
  pwmWrite(duty: number): void;
  /** pigpio's gpioGetPWMdutycycle (hardware PWM: out of 1e6; software: out of the range, 255). */
  getPwmDutyCycle?(): number;
}
export interface PigpioModule {
  Gpio: { new (pin: number, o: object): PigpioGpio; INPUT: number; OUTPUT: number; PUD_OFF: number; PUD_DOWN: number };
  getTick(): number;
  initialize(): void;
  terminate(): void;
  configureInterfaces?(mask: number): void;
  DISABLE_FIFO_IF?: number;
  DISABLE_SOCK_IF?: number;
  DISABLE_ALERT?: number;
}

const HW_PWM_CHANNEL: Readonly<Record<number, 0 | 1>> = { 12: 0, 18: 0, 13: 1, 19: 1 };
/** pigpio.h: PI_DISABLE_FIFO_IF 1, PI_DISABLE_SOCK_IF 2, PI_DISABLE_ALERT 8 (pigpio.js exports the same values). */
export const PIGPIO_INTERFACES_OFF = 1 | 2 | 8;

/**
 * Codes of the errors opening the pigpio backend (catalog rt-scale.codes.<code>;
 * each text tells the user to pick the simulated backend): the module is
 * missing, pigpio failed to initialise, the pins could not be opened. Param
 * `error` is the first line of pigpio's own message.
 */
export const PIGPIO_CODES = ['pigpio-missing', 'pigpio-init', 'pigpio-gpio'] as const;

/** Codes of a scale's pin errors: a pin or a PWM channel already used by another scale; the scale failed later (a pin read threw). */
export const PIGPIO_PIN_CODES = ['pin-busy', 'pwm-channel-busy', 'hal-failed'] as const;

/** The module, once loaded in this thread (it is never loaded twice, nor released). */
let loaded: PigpioModule | null = null;
const initialised = new WeakSet<PigpioModule>();
/** Pins and PWM channels held by the open scales of this thread (the only thread that drives the pins). */
const pinOwner = new Map<number, string>();
const channelOwner = new Map<0 | 1, { scale: string; pin: number }>();

export interface PigpioHooks {
  /** The module was required in this thread: it must live as long as the process. */
  onLoaded?(): void;
}

function load(name: string, hooks: PigpioHooks): PigpioModule {
  if (loaded) return loaded;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require(name) as PigpioModule;
  } catch (e) {
    throw new CodedError('pigpio-missing', { error: firstLine(e) });
  }
  hooks.onLoaded?.();
  return loaded;
}

function initialise(pg: PigpioModule): void {
  if (initialised.has(pg)) return;
  try {
    // before gpioInitialise, or the socket interface is already listening
    pg.configureInterfaces?.(PIGPIO_INTERFACES_OFF);
    pg.initialize();
    initialised.add(pg);
  } catch (e) {
    throw new CodedError('pigpio-init', { error: firstLine(e) });
  }
}

class PigpioHal extends PolledHal {
  private readonly doutPin: PigpioGpio;
  private readonly sck: PigpioGpio;
  private readonly motor: PigpioGpio;
  private readonly heartbeat: PigpioGpio | null;

  constructor(
    private readonly pg: PigpioModule,
    private readonly cfg: HalConfig,
    onFailure: (err: unknown) => void,
    io?: Partial<PollerIo>,
  ) {
    super(cfg.sps, onFailure, io);
    const G = pg.Gpio;
    this.doutPin = new G(cfg.doutPin, { mode: G.INPUT, pullUpDown: G.PUD_OFF });
    this.sck = new G(cfg.sckPin, { mode: G.OUTPUT });
    this.sck.digitalWrite(0);
    this.motor = new G(cfg.motorPin, { mode: G.OUTPUT });
    this.setMotor(0);
    this.heartbeat = cfg.heartbeatPin !== undefined && cfg.heartbeatPin >= 0 ? new G(cfg.heartbeatPin, { mode: G.OUTPUT }) : null;
    this.heartbeat?.digitalWrite(0);
  }

  protected readDout(): number {
    return this.doutPin.digitalRead();
  }
  protected writeSck(level: 0 | 1): void {
    this.sck.digitalWrite(level);
  }
  protected get hasHeartbeat(): boolean {
    return this.heartbeat !== null;
  }
  protected writeHeartbeat(level: 0 | 1): void {
    this.heartbeat?.digitalWrite(level);
  }
  tick(): number {
    return this.pg.getTick() >>> 0;
  }

  setMotor(permille: number): void {
    const p = Math.max(0, Math.min(1000, Math.round(permille)));
    if (this.cfg.motorPin in HW_PWM_CHANNEL) this.motor.hardwarePwmWrite(this.cfg.motorHz, p * 1000);
    else {
      this.motor.pwmFrequency(this.cfg.motorHz);
      this.motor.pwmWrite(Math.round((p * 255) / 1000));
    }
  }

  /** The motor's PWM duty as pigpio reads it back (0 = stopped), or null when this pigpio cannot say. */
  motorDuty(): number | null {
    try {
      return this.motor.getPwmDutyCycle ? this.motor.getPwmDutyCycle() : null;
    } catch {
      return null;
    }
  }

  protected releasePins(): void {
    release(this.cfg);
  }
}

function pinsOf(cfg: HalConfig): number[] {
  return [cfg.doutPin, cfg.sckPin, cfg.motorPin, ...(cfg.heartbeatPin !== undefined && cfg.heartbeatPin >= 0 ? [cfg.heartbeatPin] : [])];
}

function claim(cfg: HalConfig, scale: string): void {
  for (const pin of pinsOf(cfg)) {
    const other = pinOwner.get(pin);
    if (other !== undefined) throw new CodedError('pin-busy', { pin, other });
  }
  const ch = HW_PWM_CHANNEL[cfg.motorPin];
  if (ch !== undefined) {
    const o = channelOwner.get(ch);
    if (o) throw new CodedError('pwm-channel-busy', { pin: cfg.motorPin, channel: ch, other: o.scale, otherPin: o.pin });
    channelOwner.set(ch, { scale, pin: cfg.motorPin });
  }
  for (const pin of pinsOf(cfg)) pinOwner.set(pin, scale);
}

function release(cfg: HalConfig): void {
  for (const pin of pinsOf(cfg)) pinOwner.delete(pin);
  const ch = HW_PWM_CHANNEL[cfg.motorPin];
  if (ch !== undefined && channelOwner.get(ch)?.pin === cfg.motorPin) channelOwner.delete(ch);
}

/**
 * Opens a scale's pins on pigpio (loading and initialising it on first use in
 * this thread). Throws a CodedError (PIGPIO_CODES). `onFailure` is called if
 * the scale fails later (its motor is then off).
 */
export function openPigpio(cfg: HalConfig, scale: string, onFailure: (err: unknown) => void, hooks: PigpioHooks = {}): ScaleHal {
  return openPigpioWith(load(cfg.pigpioModule || 'pigpio', hooks), cfg, scale, onFailure);
}

/** openPigpio on a given module instance (tests: a stand-in, and injected poll timing). */
export function openPigpioWith(pg: PigpioModule, cfg: HalConfig, scale: string, onFailure: (err: unknown) => void, io?: Partial<PollerIo>): ScaleHal {
  initialise(pg);
  claim(cfg, scale);
  try {
    return new PigpioHal(pg, cfg, onFailure, io);
  } catch (e) {
    release(cfg);
    throw new CodedError('pigpio-gpio', { dout: cfg.doutPin, sck: cfg.sckPin, motor: cfg.motorPin, error: firstLine(e) });
  }
}
