// One scale inside the HAL worker: the event-driven sampling loop (no polling
// sleeps: it runs on the data-ready edge), the no-data watchdog, the SPSC ring
// to the main thread, tare/calibrate/power, and the in-worker sample
// listeners (any consumer: see scale-consumer.ts), the motor hold. Runs on any clock, so the same code runs
// in real time in the worker and in virtual time in tests and benchmarks.
import { CodedError } from '../shared/coded';
import type { SpscRing } from '../shared/spsc-ring';
import type { SharedMetrics } from '../shared/shared-metrics';
import type { ScaleHal } from './hal';
import { GAIN_PULSES, type Gain, MAX_FRAME_US, readFrame } from './hx711-protocol';
import { type Calibration, calibrateCpg, type SampleOut, Sampler, type SamplerEvent, type SamplerOptions } from './sampler-core';
import type { MotorHold, SampleListener } from './scale-consumer';
import { REC_CG, REC_FILTERED, REC_FLAGS, REC_LAT_US, REC_RAW, REC_SEQ, REC_T_HI, REC_T_LO, REC_WORDS, type ScaleEvent } from './scale-protocol';

export interface EngineOptions {
  gain: Gain;
  cal: Calibration;
  sampler: Partial<SamplerOptions>;
  calSamples: number;
  periodUs: number;
  /** Bound on a frame's total time, us (default MAX_FRAME_US). */
  maxFrameUs?: number;
}

/** Codes of the engine's errors (catalog rt-scale.codes.<code>). */
export const ENGINE_CODES = ['powered-down'] as const;

export type { SampleListener } from './scale-consumer';

export class ScaleEngine {
  readonly sampler: Sampler;
  private readonly pulses: 25 | 26 | 27;
  private readonly rec = new Int32Array(REC_WORDS);
  private cancelWatchdog: (() => void) | null = null;
  private lastEdgeUs = 0;
  /** Longest PD_SCK high time seen, us. */
  maxHighUs = 0;
  /** Data-ready edge of the last frame read on its edge (0: none since start or power-up). */
  private prevReadEdgeUs = 0;
  /** Conversions that came and went between two reads (overwritten unread: the reader was late). */
  missed = 0;
  private powered = true;
  private closed = false;
  private readonly listeners = new Set<SampleListener>();
  private holder: MotorHold | null = null;
  private exiting = false;
  /** Tare/calibrate requests run one after another (each gets its reply): one collecting, the others queued. */
  private calBusy = false;
  private readonly calQueue: Array<() => void> = [];

  constructor(
    readonly hal: ScaleHal,
    private readonly o: EngineOptions,
    private readonly ring: SpscRing | null,
    private readonly m: SharedMetrics | null,
    private readonly emit: (ev: ScaleEvent) => void,
  ) {
    this.sampler = new Sampler(o.cal, o.sampler);
    this.pulses = GAIN_PULSES[o.gain];
  }

  start(): void {
    this.m?.setGauge('powered', 1);
    this.lastEdgeUs = this.hal.clock.nowUs();
    this.hal.start((edgeUs, late) => this.onEdge(edgeUs, late === true));
    this.armWatchdog();
  }

  addListener(fn: SampleListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * The data-ready "interrupt". `late`: the edge was not seen when it
   * happened (a missed data-ready: the conversion may change under the read),
   * so the frame is read (which clears DOUT for the next conversion) and
   * discarded, counted as late; a late frame that shows a power-down (an
   * overrun) still makes the chip settle again.
   */
  onEdge(edgeUs: number, late = false): void {
    if (this.closed || !this.powered) return;
    this.lastEdgeUs = edgeUs;
    const fr = readFrame(this.hal.pins, this.pulses, this.o.maxFrameUs ?? MAX_FRAME_US);
    if (fr.maxHighUs > this.maxHighUs) {
      this.maxHighUs = fr.maxHighUs;
      this.m?.setGauge('clock_high_max_us', fr.maxHighUs);
    }
    // the check window's maximum: the main thread resets it to 0 when a window starts
    if (this.m && fr.maxHighUs > this.m.gauge('clock_high_window_us')) this.m.setGauge('clock_high_window_us', fr.maxHighUs);
    if (late) this.prevReadEdgeUs = 0; // a late read's time is not its conversion's edge
    else {
      // the chip converts on its own crystal: a gap of k periods between two reads' edges is k - 1 conversions lost
      if (this.prevReadEdgeUs > 0) {
        const k = Math.round((edgeUs - this.prevReadEdgeUs) / this.o.periodUs);
        if (k > 1) {
          this.missed += k - 1;
          this.m?.inc('missed', k - 1);
        }
      }
      this.prevReadEdgeUs = edgeUs;
    }
    if (late && fr.failure !== 'not-ready') {
      this.m?.inc('late');
      const ev = this.sampler.late(fr);
      if (ev) this.onEvent(ev);
      this.armWatchdog();
      return;
    }
    const { sample, event, bad } = this.sampler.onFrame(fr, edgeUs);
    if (bad) this.m?.inc(bad);
    if (sample) this.publish(sample);
    if (event) this.onEvent(event);
    this.armWatchdog();
  }

  private publish(s: SampleOut): void {
    const fault = (s.flags & 2) !== 0;
    if (this.listeners.size > 0) {
      for (const fn of this.listeners) fn(s, fault);
      // data-ready edge to the end of the consumers' steps (e.g. a motor command)
      this.m?.histogram('step').observeUs(this.hal.clock.nowUs() - s.tUs);
    }
    const r = this.rec;
    r[REC_SEQ] = s.seq;
    r[REC_T_HI] = Math.floor(s.tUs / 4294967296);
    r[REC_T_LO] = s.tUs >>> 0;
    r[REC_RAW] = s.raw;
    r[REC_CG] = s.cg;
    r[REC_FLAGS] = s.flags;
    r[REC_FILTERED] = s.filtered;
    const lat = this.hal.clock.nowUs() - s.tUs;
    r[REC_LAT_US] = lat;
    this.ring?.push(r);
    const m = this.m;
    if (m) {
      if (!fault) {
        m.inc('samples');
        m.setGauge('weight_cg', s.cg);
      }
      m.histogram('latency').observeUs(lat);
    }
  }

  private onEvent(ev: SamplerEvent): void {
    if (ev.t === 'fault') {
      this.m?.inc('faults');
      this.m?.setGauge('fault', 1);
      this.emit({ t: 'fault', reason: ev.reason, run: ev.run });
    } else {
      this.m?.setGauge('fault', 0);
      this.emit({ t: 'recovered' });
    }
  }

  /** No data-ready within 3 periods: count it, raise a fault after the run, try a read if DOUT is already low. */
  private armWatchdog(): void {
    this.cancelWatchdog?.();
    if (this.closed || !this.powered) return;
    const due = this.lastEdgeUs + 3 * this.o.periodUs;
    this.cancelWatchdog = this.hal.clock.at(due, () => {
      this.cancelWatchdog = null;
      if (this.closed || !this.powered) return;
      if (this.hal.pins.dout() === 0) {
        // a conversion is waiting whose edge was missed: read it now, and discard it (late)
        this.onEdge(this.hal.clock.nowUs(), true);
        return;
      }
      this.m?.inc('no_data');
      const ev = this.sampler.missing();
      if (ev) this.onEvent(ev);
      this.lastEdgeUs = due;
      this.armWatchdog();
    });
  }

  power(on: boolean): void {
    if (on === this.powered) return;
    this.powered = on;
    this.m?.setGauge('powered', on ? 1 : 0);
    if (on) {
      this.prevReadEdgeUs = 0;
      this.hal.powerUp();
      this.sampler.resettle();
      this.lastEdgeUs = this.hal.clock.nowUs();
      this.armWatchdog();
    } else {
      this.cancelWatchdog?.();
      this.cancelWatchdog = null;
      this.hal.powerDown();
    }
  }

  /** True while a consumer holds the motor (a dose): tare, calibrate and manual motor are refused. */
  get motorHeld(): boolean {
    return this.holder !== null;
  }

  /** Takes the motor for one consumer (see scale-consumer.ts). */
  holdMotor(): MotorHold {
    if (this.holder) throw new CodedError('motor-held');
    if (this.calBusy) throw new CodedError('scale-calibrating');
    const hal = this.hal;
    const h: MotorHold = {
      set: (permille) => {
        if (this.holder === h && !this.exiting) hal.setMotor(permille);
      },
      release: () => {
        if (this.holder !== h) return;
        this.holder = null;
        hal.setMotor(0);
      },
    };
    this.holder = h;
    return h;
  }

  /** The process is exiting: motor off, and no consumer may turn it on again. */
  stopForExit(): void {
    this.exiting = true;
    this.hal.setMotor(0);
  }

  /** Manual motor command: refused while a consumer holds the motor. */
  setMotor(permille: number): number {
    if (this.holder) throw new CodedError('motor-held');
    if (this.exiting) return 0;
    this.hal.setMotor(permille);
    return permille;
  }

  /** Averages calSamples filtered readings and makes them zero. Queued behind a running tare/calibrate; refused while the motor is held. */
  tare(): Promise<Calibration> {
    return this.queueCal(() =>
      this.collect().then((avg) => {
        this.sampler.cal = { ...this.sampler.cal, zero: avg };
        this.emit({ t: 'calibration', cal: this.sampler.cal, how: 'tare' });
        return this.sampler.cal;
      }),
    );
  }

  /** Averages calSamples readings with a known weight on the cell and sets counts per gram. Queued like tare. */
  calibrate(knownCg: number): Promise<Calibration> {
    return this.queueCal(() =>
      this.collect().then((avg) => {
        const cpgMilli = calibrateCpg(avg, this.sampler.cal.zero, knownCg);
        this.sampler.cal = { ...this.sampler.cal, cpgMilli };
        this.emit({ t: 'calibration', cal: this.sampler.cal, how: 'calibrate' });
        return this.sampler.cal;
      }),
    );
  }

  private queueCal(op: () => Promise<Calibration>): Promise<Calibration> {
    if (this.holder) return Promise.reject(new CodedError('motor-held'));
    return new Promise<Calibration>((resolve, reject) => {
      const run = (): void => {
        if (this.holder) {
          reject(new CodedError('motor-held'));
          this.nextCal();
          return;
        }
        op().then(
          (v) => {
            resolve(v);
            this.nextCal();
          },
          (err: unknown) => {
            reject(err);
            this.nextCal();
          },
        );
      };
      if (this.calBusy) this.calQueue.push(run);
      else {
        this.calBusy = true;
        run(); // nothing queued: collecting starts now
      }
    });
  }

  private nextCal(): void {
    const next = this.calQueue.shift();
    if (next) next();
    else this.calBusy = false;
  }

  private collect(): Promise<number> {
    if (!this.powered) return Promise.reject(new CodedError('powered-down'));
    return new Promise((resolve) => this.sampler.collect(this.o.calSamples, resolve));
  }

  /** Noise readout, grams (also published as a gauge). */
  noise(): number {
    const g = this.sampler.noiseG();
    this.m?.setGauge('noise_ug', Math.round(g * 1e6));
    return g;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.cancelWatchdog?.();
    this.listeners.clear();
    this.holder = null;
    this.hal.close(); // motor off
  }
}
