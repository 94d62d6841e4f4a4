// The dosing controller inside the scale's worker: every published sample
// goes straight from the sampler to the controller's step in the same thread
// (no hop through the flow engine), the motor command goes to the motor in
// that same step, a cut-off between two samples is a timer on the scale's
// clock, and a stale-sensor watchdog stops the motor when samples stop. Stop,
// abort and close turn the motor off at once (O(1)). The runner holds the
// scale's motor for the length of a dose (the scale then refuses tare,
// calibrate and manual motor) and only then. Runs on any clock (real or
// virtual): it sees the scale only through the consumer interface.
import { CodedError } from '../shared/coded';
import type { SharedHistogram } from '../shared/shared-metrics';
import type { SampleOut } from '../rt-scale/sampler-core';
import type { ConsumerHost, MotorHold } from '../rt-scale/scale-consumer';
import { type AbortReason, DosingController, type DosingParams, type LearnedPlant, type MotorCommand } from './dosing-core';
import type { DoseDone, DoseProgress } from './dosing-protocol';

export type { DoseProgress } from './dosing-protocol';

export interface RunnerEvents {
  progress(p: DoseProgress): void;
  done(rec: DoseDone): void;
}

/** Longest run of the controller's after-dose learning between two yields to the thread's event loop (us). */
const WORK_SLICE_US = 1000;

export class DoseRunner {
  private _ctl: DosingController;
  private detach: (() => void) | null = null;
  private hold: MotorHold | null = null;
  private cancelStop: (() => void) | null = null;
  private cancelStale: (() => void) | null = null;
  private lastProgressUs = 0;
  private startUs = 0;
  private recipe: string | undefined;
  private targetCg = 0;
  /** Step latencies of the running dose (data-ready edge to motor command), us. */
  private stepLat: number[] = [];
  private readonly onSampleFn = (s: SampleOut, fault: boolean): void => this.onSample(s, fault);
  /** The dose whose result waits for the controller's learning (run in slices between samples). */
  private pendingDone: { stepP99Us: number; recipe: string | undefined } | null = null;
  private cancelWork: (() => void) | null = null;

  constructor(
    private readonly host: ConsumerHost,
    private readonly params: Partial<DosingParams>,
    /** What the station learned before (LearnedPlant), or an older version's bare in-flight time (us; 0 = nothing known). */
    prior: number | LearnedPlant | null,
    private readonly ev: RunnerEvents,
    private readonly stepHist: SharedHistogram | null,
    private readonly progressEveryUs = 100_000,
  ) {
    this._ctl = new DosingController(params, prior);
    this._ctl.setSamplePeriod(host.periodUs);
  }

  /** The controller (replaced by forget()). */
  get ctl(): DosingController {
    return this._ctl;
  }

  /**
   * Forgets what was learned: the next dose starts from nothing, as on a fresh
   * station. Refused (CodedError dose-already-running) while a dose runs.
   */
  forget(): void {
    if (this._ctl.running) throw new CodedError('dose-already-running');
    this.emitDone(); // the last dose's result (and what it learned) first
    this._ctl = new DosingController(this.params, null);
    this._ctl.setSamplePeriod(this.host.periodUs);
  }

  get running(): boolean {
    return this.ctl.running;
  }

  /**
   * Starts a dose; throws a CodedError: DOSE_START_CODES for a bad target or
   * when one is running, HOLD_CODES when the scale's motor is not free.
   */
  start(targetCg: number, recipe?: string): void {
    if (this.ctl.running) throw new CodedError('dose-already-running');
    this.emitDone(); // the last dose's learning ends (at once) and its result goes out before this dose starts
    const hold = this.host.holdMotor();
    const now = this.host.clock.nowUs();
    try {
      this.ctl.start(targetCg, now, { tare: true });
    } catch (err) {
      hold.release();
      throw err;
    }
    this.hold = hold;
    this.recipe = recipe;
    this.targetCg = targetCg;
    this.startUs = now;
    this.stepLat = [];
    this.lastProgressUs = 0;
    this.detach = this.host.subscribe(this.onSampleFn);
    this.armStale();
  }

  /** Stop input / abort / close: this runner's motor is off when this returns (another runner's dose is not touched). */
  abort(reason: AbortReason): void {
    if (!this.ctl.running) {
      this.motor({ duty: 0 });
      return;
    }
    this.motor(this.ctl.abort(reason, this.host.clock.nowUs()));
    this.finish();
  }

  private onSample(s: SampleOut, fault: boolean): void {
    if (!this.ctl.running) return;
    const cmd = this.ctl.step({ cg: s.cg, tUs: s.tUs, fault });
    this.motor(cmd);
    const now = this.host.clock.nowUs();
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
    this.hold?.set(cmd.duty);
    this.cancelStop?.();
    this.cancelStop = null;
    if (cmd.stopAtUs !== undefined && cmd.duty > 0) {
      this.cancelStop = this.host.clock.at(cmd.stopAtUs, () => {
        this.cancelStop = null;
        this.hold?.set(0);
      });
    }
  }

  private armStale(): void {
    this.cancelStale?.();
    this.cancelStale = this.host.clock.at(this.host.clock.nowUs() + this.ctl.staleLimitUs, () => {
      this.cancelStale = null;
      const cmd = this.ctl.checkStale(this.host.clock.nowUs());
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
    this.cancelStop?.();
    this.cancelStop = null;
    this.hold?.release(); // motor off, and the scale takes tare/calibrate again
    this.hold = null;
    const sorted = [...this.stepLat].sort((a, b) => a - b);
    const p99 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] : 0;
    this.pendingDone = { stepP99Us: p99, recipe: this.recipe };
    // what the controller learns from the dose (the ripple period search: tens of ms) runs in slices of
    // WORK_SLICE_US, so the scale's sampling and other consumers in this thread go on meanwhile; the
    // result (with the learned plant) follows it
    if (this.ctl.pendingWork) this.cancelWork = this.host.clock.at(this.host.clock.nowUs(), this.workSlice);
    else this.emitDone();
  }

  private readonly workSlice = (): void => {
    this.cancelWork = null;
    const clock = this.host.clock;
    if (this.ctl.work(clock.nowUs() + WORK_SLICE_US, () => clock.nowUs())) this.cancelWork = clock.at(clock.nowUs(), this.workSlice);
    else this.emitDone();
  };

  /** Sends the finished dose's result, ending its learning at once if it is still running. */
  private emitDone(): void {
    this.cancelWork?.();
    this.cancelWork = null;
    const pending = this.pendingDone;
    this.pendingDone = null;
    const rec = pending ? this.ctl.lastRecord() : null;
    if (!pending || !rec) return;
    this.ev.done({ ...rec, stepP99Us: pending.stepP99Us, ...(pending.recipe !== undefined ? { recipe: pending.recipe } : {}) });
  }

  close(): void {
    this.abort('closed');
    this.emitDone();
    this.cancelStop?.();
    this.cancelStop = null;
    this.hold?.release();
    this.hold = null;
  }
}
