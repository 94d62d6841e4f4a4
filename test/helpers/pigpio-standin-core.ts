// TEST ONLY. A stand-in for the `pigpio` npm package (fivdi/pigpio 3.3.1):
// the same JS API surface that nodes/rt-scale/hal-pigpio.ts uses, and more
// (Gpio: mode, pullUpDown, digitalRead/Write, trigger, pwmWrite,
// hardwarePwmWrite, pwmFrequency, enable/disableInterrupt, enable/disableAlert;
// getTick, tickDiff, initialize, terminate, configureClock,
// configureInterfaces, configureSocketPort and the constants), over a
// simulated board whose HX711s are the bit-level simulated chip
// (nodes/rt-scale/sim-hx711.ts), so CI runs the pigpio backend's own code.
//
// It reproduces the addon's pitfalls, so code that falls into them fails here:
// - interrupt and alert callbacks are delivered on the MAIN thread's loop
//   (src/pigpio.cc: uv_async_init(uv_default_loop(), ...)): on the main thread
//   they arrive through setImmediate (and wait while the loop is blocked); a
//   callback registered from a worker thread would be called from the main
//   thread, which the real addon does in a V8 isolate that is not its own: the
//   stand-in refuses it with an error saying so;
// - sysfs interrupts fail with pigpio error -123 when `kernel` is 6.6 or later;
// - pigpio.js's fallback when the addon cannot be loaded (a second load in
//   the process: the addon is not context-aware): the binding is `{}`, so the
//   first call fails with "pigpio.gpioInitialise is not a function"
//   (pigpio-standin.ts decides that per process);
// - tickDiff is pigpio.js's `(end >> 0) - (start >> 0)` (wrong across 2^31);
//   getTick is a uint32 of real microseconds from `tickStart`;
// - the socket interface is "open on port 8888" unless configureInterfaces
//   disabled it before initialise; the C library's signal handlers are
//   modelled by pigpio-standin-signals.ts (main thread) when `signals` is set;
// - hardware PWM keeps its duty after terminate (and after the process dies:
//   every PWM write is recorded in `record`, a JSON-lines file).
import { appendFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { isMainThread, threadId } from 'node:worker_threads';

import { hrNowUs, RealClock } from '../../nodes/rt-scale/clock';
import { type SimChipOptions, SimHx711 } from '../../nodes/rt-scale/sim-hx711';

export interface StandinChip {
  dout: number;
  sck: number;
  /** The motor pin: its PWM duty drives the simulated material flow. */
  motor?: number;
  sim?: Partial<SimChipOptions>;
  /** Reads of DOUT after which every read throws (a failing pin: one scale's failure). */
  failAfterReads?: number;
  /** Reads of DOUT after which the thread that loaded the stand-in dies (an uncaught error outside any scale). */
  crashThreadAfterReads?: number;
}

export interface StandinConfig {
  chips?: StandinChip[];
  /** JSON-lines file of what the board saw (loads, init, PWM writes, signals). */
  record?: string;
  /** Directory of the per-process load marker (pigpio-standin.ts). */
  lockDir?: string;
  /** getTick() starts here (uint32), e.g. just before 2^31 or 2^32 to cross the wrap early. */
  tickStart?: number;
  /** Kernel version: '6.6' or later makes sysfs interrupts fail (-123). */
  kernel?: string;
  /** Model the C library's signal handlers (needs pigpio-standin-signals on the main thread). */
  signals?: boolean;
}

export const STANDIN_ENV = 'RTEDGE_PIGPIO_STANDIN';
export const SIGNAL_CHANNEL = 'rtedge-pigpio-standin-signals';

const HW_PWM = new Set([12, 13, 18, 19]);
const PI_BAD_ISR_INIT = -123;
const PI_NOT_HPWM_GPIO = -95;

function pigpioError(rc: number, fn: string): Error {
  return Object.assign(new Error(`pigpio error ${rc} in ${fn}`), { code: rc });
}

export function record(cfg: StandinConfig, ev: Record<string, unknown>): void {
  if (cfg.record) appendFileSync(cfg.record, JSON.stringify({ ...ev, thread: threadId, at: Date.now() }) + '\n');
}

interface Wired {
  chip: SimHx711;
  cfg: StandinChip;
  reads: number;
  sckHigh: boolean;
  riseUs: number;
  bit: 0 | 1;
}

/** The simulated board: what the C library and the pins do. Method names are the addon's. */
export class Board {
  readonly modes = new Map<number, number>();
  readonly levels = new Map<number, number>();
  /** Last PWM write per pin: hw duty 0..1e6 or sw duty 0..255. */
  readonly pwm = new Map<number, { hw: boolean; freq: number; duty: number }>();
  readonly isr = new Map<number, (gpio: number, level: number, tick: number) => void>();
  readonly alerts = new Map<number, (gpio: number, level: number, tick: number) => void>();
  ifFlags = 0;
  socketPort = 8888;
  initialised = false;
  inits = 0;
  private readonly wired: Wired[] = [];
  private readonly tick0: number;

  constructor(readonly cfg: StandinConfig) {
    this.tick0 = (cfg.tickStart ?? 0) - hrNowUs();
    const clock = new RealClock();
    for (const c of cfg.chips ?? [{ dout: 5, sck: 6, motor: 18 }]) {
      this.wired.push({ chip: new SimHx711(clock, c.sim ?? {}), cfg: c, reads: 0, sckHigh: false, riseUs: 0, bit: 1 });
    }
  }

  chipOn(gpio: number): SimHx711 | undefined {
    return this.wired.find((w) => w.cfg.dout === gpio || w.cfg.sck === gpio)?.chip;
  }

  gpioCfgInterfaces(flags: number): number {
    if (this.initialised) return 0; // too late: pigpio ignores configuration after initialise
    this.ifFlags = flags >>> 0;
    return 0;
  }
  gpioCfgSocketPort(port: number): void {
    if (!this.initialised) this.socketPort = port;
  }
  gpioCfgClock(): void {
    /* sample rate and peripheral: nothing to model */
  }

  gpioInitialise(): number {
    if (this.initialised) return 0;
    this.initialised = true;
    this.inits++;
    const socket = this.ifFlags & 2 ? null : `0.0.0.0:${this.socketPort}`;
    const fifo = this.ifFlags & 1 ? null : '/dev/pigpio';
    record(this.cfg, { t: 'init', ifFlags: this.ifFlags, socket, fifo, mainThread: isMainThread });
    for (const w of this.wired) {
      w.chip.start((edgeUs) => this.chipEdge(w, edgeUs));
    }
    if (this.cfg.signals) this.installSignalHandlers();
    return 79; // the library's version
  }

  /** gpioInitialise installs handlers for SIGINT/SIGTERM/... (sigaction): modelled on the main thread by pigpio-standin-signals.ts. */
  private installSignalHandlers(): void {
    const ack = new Int32Array(new SharedArrayBuffer(4));
    const ch = new BroadcastChannel(SIGNAL_CHANNEL);
    ch.postMessage({ t: 'sigaction', ack: ack.buffer, record: this.cfg.record });
    // sigaction is synchronous in the C library: wait until the main thread has taken the handlers over
    Atomics.wait(ack, 0, 0, 2000);
    ch.close();
    record(this.cfg, { t: 'sigaction', acknowledged: Atomics.load(ack, 0) === 1 });
  }

  gpioTerminate(): void {
    if (!this.initialised) return;
    this.initialised = false;
    for (const w of this.wired) w.chip.stop();
    // hardware PWM is not reset: the motor keeps its duty (as on a Pi)
    record(this.cfg, { t: 'terminate' });
  }

  gpioTick(): number {
    return (hrNowUs() + this.tick0) >>> 0;
  }

  gpioSetMode(gpio: number, mode: number): void {
    this.modes.set(gpio, mode);
  }
  gpioSetPullUpDown(): void {
    /* no pull resistors on a simulated board */
  }

  gpioRead(gpio: number): number {
    const w = this.wired.find((x) => x.cfg.dout === gpio);
    if (!w) return this.levels.get(gpio) ?? 0;
    w.reads++;
    if (w.cfg.crashThreadAfterReads !== undefined && w.reads === w.cfg.crashThreadAfterReads) {
      setImmediate(() => {
        throw new Error('pigpio stand-in: the HAL thread crashed');
      });
    }
    if (w.cfg.failAfterReads !== undefined && w.reads > w.cfg.failAfterReads) throw pigpioError(-3, 'gpioRead');
    if (w.sckHigh) return w.bit;
    w.chip.catchUp(); // the chip converts on its own crystal, even while the reading thread's loop is blocked
    return w.chip.dout();
  }

  gpioWrite(gpio: number, level: number): void {
    this.levels.set(gpio, level ? 1 : 0);
    const w = this.wired.find((x) => x.cfg.sck === gpio);
    if (!w) return;
    if (level && !w.sckHigh) {
      w.sckHigh = true;
      w.riseUs = hrNowUs();
      w.chip.catchUp();
      w.bit = w.chip.sckHigh();
    } else if (!level && w.sckHigh) {
      w.sckHigh = false;
      const highUs = hrNowUs() - w.riseUs;
      w.chip.sckLow();
      if (highUs >= 60) {
        // PD_SCK was high 60 us or more (a preempted bit-bang, or powerDown()): the chip powered down; now it restarts and settles
        w.chip.powerDown();
        w.chip.powerUp();
      }
    }
  }

  gpioTrigger(gpio: number, len: number, level: number): void {
    this.gpioWrite(gpio, level);
    this.gpioWrite(gpio, level ? 0 : 1);
    record(this.cfg, { t: 'trigger', gpio, len });
  }

  gpioPWM(gpio: number, duty: number): void {
    const freq = this.pwm.get(gpio)?.freq ?? 800;
    this.pwm.set(gpio, { hw: false, freq, duty });
    this.motor(gpio, Math.round((duty * 1000) / 255));
    record(this.cfg, { t: 'pwm', gpio, hw: false, freq, duty, permille: Math.round((duty * 1000) / 255) });
  }
  gpioSetPWMfrequency(gpio: number, freq: number): void {
    const p = this.pwm.get(gpio);
    this.pwm.set(gpio, { hw: false, freq, duty: p?.duty ?? 0 });
  }
  gpioHardwarePWM(gpio: number, freq: number, duty: number): void {
    if (!HW_PWM.has(gpio)) throw pigpioError(PI_NOT_HPWM_GPIO, 'gpioHardwarePWM');
    this.pwm.set(gpio, { hw: true, freq, duty });
    this.motor(gpio, Math.round(duty / 1000));
    record(this.cfg, { t: 'pwm', gpio, hw: true, freq, duty, permille: Math.round(duty / 1000) });
  }
  gpioGetPWMdutycycle(gpio: number): number {
    return this.pwm.get(gpio)?.duty ?? 0;
  }
  private motor(gpio: number, permille: number): void {
    for (const w of this.wired) if (w.cfg.motor === gpio) w.chip.setMotor(permille);
  }

  gpioSetISRFunc(gpio: number, edge: number, timeout: number, cb?: (gpio: number, level: number, tick: number) => void): void {
    if (cb && this.kernelAtLeast(6, 6)) throw pigpioError(PI_BAD_ISR_INIT, 'gpioSetISRFunc');
    this.callbackOnThisThread(cb, 'gpioSetISRFunc');
    if (cb) this.isr.set(gpio, cb);
    else this.isr.delete(gpio);
    record(this.cfg, { t: 'isr', gpio, edge, on: !!cb });
  }
  gpioSetAlertFunc(gpio: number, cb?: (gpio: number, level: number, tick: number) => void): void {
    this.callbackOnThisThread(cb, 'gpioSetAlertFunc');
    if (cb) this.alerts.set(gpio, cb);
    else this.alerts.delete(gpio);
    record(this.cfg, { t: 'alert', gpio, on: !!cb });
  }

  private callbackOnThisThread(cb: unknown, fn: string): void {
    if (cb && !isMainThread) {
      throw new Error(
        `${fn}: pigpio queues its callbacks on uv_default_loop(), the main thread's event loop; a callback created on this worker thread would be called there, outside its own isolate (pigpio stand-in)`,
      );
    }
  }

  private kernelAtLeast(major: number, minor: number): boolean {
    const m = /^(\d+)\.(\d+)/.exec(this.cfg.kernel ?? '');
    return !!m && (Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor));
  }

  /** A conversion finished (DOUT fell): interrupts and alerts go through the main loop, as uv_async_send does. */
  private chipEdge(w: Wired, _edgeUs: number): void {
    const gpio = w.cfg.dout;
    const tick = this.gpioTick();
    const isr = this.isr.get(gpio);
    const alert = this.alerts.get(gpio);
    if (isr) setImmediate(() => isr(gpio, 0, tick));
    if (alert) setImmediate(() => alert(gpio, 0, tick));
  }
}

/** What pigpio.js builds over the binding (same names, same behaviour, including its tickDiff). */
export function pigpioJs(binding: Partial<Board>) {
  // the same name as in pigpio.js, so a missing binding fails with its message: "pigpio.gpioInitialise is not a function"
  const pigpio = binding as Board;
  let initialized = false;
  const initializePigpio = (): void => {
    if (!initialized) {
      pigpio.gpioInitialise();
      initialized = true;
    }
  };

  class Gpio extends EventEmitter {
    static readonly INPUT = 0;
    static readonly OUTPUT = 1;
    static readonly ALT0 = 4;
    static readonly PUD_OFF = 0;
    static readonly PUD_DOWN = 1;
    static readonly PUD_UP = 2;
    static readonly RISING_EDGE = 0;
    static readonly FALLING_EDGE = 1;
    static readonly EITHER_EDGE = 2;
    static readonly TIMEOUT = 2;
    readonly gpio: number;
    constructor(gpio: number, options: { mode?: number; pullUpDown?: number; edge?: number; timeout?: number; alert?: boolean } = {}) {
      super();
      initializePigpio();
      this.gpio = +gpio;
      if (typeof options.mode === 'number') this.mode(options.mode);
      if (typeof options.pullUpDown === 'number') this.pullUpDown(options.pullUpDown);
      if (typeof options.edge === 'number') this.enableInterrupt(options.edge, typeof options.timeout === 'number' ? options.timeout : 0);
      if (options.alert === true) this.enableAlert();
    }
    mode(mode: number): this {
      pigpio.gpioSetMode(this.gpio, +mode);
      return this;
    }
    pullUpDown(pud: number): this {
      pigpio.gpioSetPullUpDown();
      void pud;
      return this;
    }
    digitalRead(): number {
      return pigpio.gpioRead(this.gpio);
    }
    digitalWrite(level: number): this {
      pigpio.gpioWrite(this.gpio, +level);
      return this;
    }
    trigger(pulseLen: number, level: number): this {
      pigpio.gpioTrigger(this.gpio, +pulseLen, +level);
      return this;
    }
    pwmWrite(dutyCycle: number): this {
      pigpio.gpioPWM(this.gpio, +dutyCycle);
      return this;
    }
    hardwarePwmWrite(frequency: number, dutyCycle: number): this {
      pigpio.gpioHardwarePWM(this.gpio, +frequency, +dutyCycle);
      return this;
    }
    getPwmDutyCycle(): number {
      return pigpio.gpioGetPWMdutycycle(this.gpio);
    }
    pwmFrequency(frequency: number): this {
      pigpio.gpioSetPWMfrequency(this.gpio, +frequency);
      return this;
    }
    enableInterrupt(edge: number, timeout = 0): this {
      const handler = (gpio: number, level: number, tick: number): void => void this.emit('interrupt', level, tick);
      pigpio.gpioSetISRFunc(this.gpio, +edge, +timeout, handler);
      return this;
    }
    disableInterrupt(): this {
      pigpio.gpioSetISRFunc(this.gpio, Gpio.EITHER_EDGE, 0);
      return this;
    }
    enableAlert(): this {
      pigpio.gpioSetAlertFunc(this.gpio, (gpio, level, tick) => void this.emit('alert', level, tick));
      return this;
    }
    disableAlert(): this {
      pigpio.gpioSetAlertFunc(this.gpio);
      return this;
    }
  }

  return {
    Gpio,
    getTick: (): number => pigpio.gpioTick(),
    tickDiff: (startUsec: number, endUsec: number): number => (endUsec >> 0) - (startUsec >> 0),
    initialize: (): void => initializePigpio(),
    terminate: (): void => {
      pigpio.gpioTerminate();
      initialized = false;
    },
    configureClock: (microseconds: number, peripheral: number): void => void pigpio.gpioCfgClock(),
    configureSocketPort: (port: number): void => void pigpio.gpioCfgSocketPort(+port),
    configureInterfaces: (interfaces: number): number => pigpio.gpioCfgInterfaces(+interfaces),
    DISABLE_FIFO_IF: 1,
    DISABLE_SOCK_IF: 2,
    LOCALHOST_SOCK_IF: 4,
    DISABLE_ALERT: 8,
    CLOCK_PWM: 0,
    CLOCK_PCM: 1,
  };
}

export type PigpioStandin = ReturnType<typeof pigpioJs>;

/** A fresh board and its pigpio.js, with no per-process rule (for tests in one process). */
export function createPigpio(cfg: StandinConfig = {}): PigpioStandin & { board: Board } {
  const board = new Board(cfg);
  return { ...pigpioJs(board), board };
}
