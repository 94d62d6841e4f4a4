// The dosing controller inside the scale's worker: every published sample
// goes straight from the sampler to the controller's step in the same thread
// (no hop through the flow engine), the motor command goes to the HAL in that
// same step, a cut-off between two samples is a timer on the HAL's clock, and
// a stale-sensor watchdog stops the motor when samples stop. Stop, abort and
// close turn the motor off at once (O(1)). Runs on any clock (real or virtual).
import type { SharedHistogram } from '../shared/shared-metrics';
import type { ScaleHal } from '../rt-scale/hal';
import type { SampleOut } from '../rt-scale/sampler-core';
import type { ScaleEngine } from '../rt-scale/scale-engine';
import { type AbortReason, type DoseRecord, DosingController, type DosingParams, type LearnedPlant, type MotorCommand } from './dosing-core';

export interface DoseProgress {
  state: string;
  netCg: number;
  targetCg: number;
  elapsedUs: number;
}

export interface RunnerEvents {
  progress(p: DoseProgress): void;
  done(rec: DoseRecord & { stepP99Us: number; recipe?: string }): void;
}

export class DoseRunner {
  readonly ctl: DosingController;
  private detach: (() => void) | null = null;
  private cancelStop: (() => void) | null = null;
  private cancelStale: (() => void) | null = null;
  private lastProgressUs = 0;
  private startUs = 0;
  private recipe: string | undefined;
  private targetCg = 0;
  /** Step latencies of the running dose (data-ready edge to motor command), us. */
  private stepLat: number[] = [];

  constructor(
    private readonly engine: ScaleEngine,
    private readonly hal: ScaleHal,
    params: Partial<DosingParams>,
    /** What the station learned before (LearnedPlant), or an older version's bare in-flight time (us; 0 = nothing known). */
    prior: number | LearnedPlant | null,
    private readonly ev: RunnerEvents,
    private readonly stepHist: SharedHistogram | null,
    private readonly progressEveryUs = 100_000,
  ) {
    this.ctl = new DosingController(params, prior);
  }

  get running(): boolean {
    return this.ctl.running;
  }

  /** Starts a dose; throws a CodedError (DOSE_START_CODES) for a bad target or when one is running. */
  start(targetCg: number, recipe?: string): void {
    const now = this.hal.clock.nowUs();
    this.ctl.start(targetCg, now, { tare: true });
    this.recipe = recipe;
    this.targetCg = targetCg;
    this.startUs = now;
    this.stepLat = [];
    this.lastProgressUs = 0;
    this.detach = this.engine.addListener((s, fault) => this.onSample(s, fault));
    this.armStale();
  }

  /** Stop input / abort / close: the motor is off when this returns. */
  abort(reason: AbortReason): void {
    if (!this.ctl.running) {
      this.motor({ duty: 0 });
      return;
    }
    this.motor(this.ctl.abort(reason, this.hal.clock.nowUs()));
    this.finish();
  }

  private onSample(s: SampleOut, fault: boolean): void {
    if (!this.ctl.running) return;
    const cmd = this.ctl.step({ cg: s.cg, tUs: s.tUs, fault });
    this.motor(cmd);
    const now = this.hal.clock.nowUs();
    const lat = now - s.tUs;
    this.stepLat.push(lat);
    this.stepHist?.observeUs(lat);
    this.armStale();
    if (!this.ctl.running) {
      this.finish();
      return;
    }
    if (now - this.lastProgressUs >= this.progressEveryUs) {
      this.lastProgressUs = now;
      this.ev.progress({ state: this.ctl.state, netCg: this.ctl.netCg, targetCg: this.targetCg, elapsedUs: now - this.startUs });
    }
  }

  private motor(cmd: MotorCommand): void {
    this.hal.setMotor(cmd.duty);
    this.cancelStop?.();
    this.cancelStop = null;
    if (cmd.stopAtUs !== undefined && cmd.duty > 0) {
      this.cancelStop = this.hal.clock.at(cmd.stopAtUs, () => {
        this.cancelStop = null;
        this.hal.setMotor(0);
      });
    }
  }

  private armStale(): void {
    this.cancelStale?.();
    this.cancelStale = this.hal.clock.at(this.hal.clock.nowUs() + this.ctl.staleLimitUs, () => {
      this.cancelStale = null;
      const cmd = this.ctl.checkStale(this.hal.clock.nowUs());
      if (cmd) {
        this.motor(cmd);
        this.finish();
      } else if (this.ctl.running) this.armStale();
    });
  }

  private finish(): void {
    this.detach?.();
    this.detach = null;
    this.cancelStale?.();
    this.cancelStale = null;
    const rec = this.ctl.lastRecord();
    if (!rec) return;
    const sorted = [...this.stepLat].sort((a, b) => a - b);
    const p99 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] : 0;
    this.ev.done({ ...rec, stepP99Us: p99, ...(this.recipe !== undefined ? { recipe: this.recipe } : {}) });
  }

  close(): void {
    this.abort('closed');
    this.cancelStop?.();
    this.cancelStop = null;
    this.hal.setMotor(0);
  }
}
