// The dosing controller: a state machine that takes one weight sample per
// step and returns a motor command. Pure TypeScript, no Node-RED, no threads.
// Integer arithmetic only in the step: weights in centigrams (cg), times in
// microseconds (us), duty in permille, rates in cg/s; every value stays an
// integer (Math.trunc / Math.round on integer operands), so nothing depends on
// floating-point rounding.
//
//   idle -> taring -> coarse -> fine -> settling -> done | aborted
//
// - taring: waits for a stable reading, takes it as zero.
// - coarse: full speed until the weight that will be on the scale once the
//   material in flight lands enters the fine band.
// - fine: fine speed; the cut-off is predicted: the motor stops when
//   weight + material in flight reaches the target, at the exact microsecond
//   between two samples (stopAtUs), so the 12.5 ms sample period does not
//   quantise the dose.
//
// Material in flight is a transport-delay model: what lands on the scale at t
// left the auger at t - tau, so the mass in flight is the integral of the
// motor's flow over the last tau, flow(duty) being measured live (the slope of
// the weight, attributed to the duty that was running tau earlier). A change
// of speed is therefore predicted correctly while coarse material is still
// falling after the switch to fine.
// - settling: waits for a stable window (spread under a threshold over the
//   window, not a fixed wait), then judges ok / under / over against the
//   tolerance; optional top-up pulses when under.
//
// Learning: tau (motor stop latency + transport delay + filter lag) is learned
// from each dose: the mass that landed after the cut-off, walked back through
// the duty history, gives tau_measured;
// tau moves by 1/learnDiv of the error (default 4: Unipulse's 1/4; 2 is Rice Lake's half), bounded to
// [tauMinUs, tauMaxUs], and a dose whose tau_measured is off by more than
// outlierPct of tau is ignored (counted) unless `confirm` outliers in a row
// agree (a real change). Because tau is a time, it carries over when the flow
// rate changes (a different material, a worn auger): the rate is measured live.

import { CodedError } from '../shared/coded';

/** Codes of start() errors (catalog rt-scale.codes.<code>: they come back through the scale's worker). */
export const DOSE_START_CODES = ['dose-already-running', 'bad-target', 'beyond-never-exceed'] as const;

export type DoseState = 'idle' | 'taring' | 'coarse' | 'fine' | 'settling' | 'done' | 'aborted';
export type DoseResult = 'ok' | 'under' | 'over' | 'aborted';

export type AbortReason =
  | 'stop'
  | 'max-time'
  | 'never-exceed'
  | 'no-progress'
  | 'container-removed'
  | 'stale-sensor'
  | 'sensor-fault'
  | 'closed';

export interface DosingParams {
  /** Coarse (full) speed, permille of full duty. */
  coarseDuty: number;
  /** Fine speed, permille. */
  fineDuty: number;
  /** Switch to fine when the predicted final weight is within this of the target (cg). */
  fineBandCg: number;
  /** ok when |error| <= tolerance (cg). */
  toleranceCg: number;
  /** Stability: the spread (max - min) over the window must be under this (cg). */
  stableSpreadCg: number;
  stableWindowUs: number;
  /** Window for the flow-rate estimate (least squares slope). */
  rateWindowUs: number;
  /** Each flow measurement moves the flow estimate by 1/flowGainDiv of its difference (smoothing over ripple). */
  flowGainDiv: number;
  /** Fine phase: the cut-off uses a line fitted over this window instead of the newest sample (0 = newest sample). */
  fitWindowUs: number;
  /** Safety */
  maxDoseUs: number;
  neverExceedCg: number;
  /** less than this gained in noProgressUs at coarse speed: jam or empty hopper. */
  noProgressCg: number;
  noProgressUs: number;
  /** a drop of more than this below the running maximum: container removed. */
  containerDropCg: number;
  /** no sample for this long: stale sensor. */
  staleUs: number;
  /** Top-up pulses when under: duration and max count (0 disables). */
  topUpPulseUs: number;
  topUpMax: number;
  /** In-flight learning. */
  tauMinUs: number;
  tauMaxUs: number;
  outlierPct: number;
  confirm: number;
  /** tau moves by 1/learnDiv of each dose's error (2 = Rice Lake's half). */
  learnDiv: number;
  /** Settling gives up (judges anyway) after this long. */
  maxSettleUs: number;
}

export const DEFAULT_PARAMS: DosingParams = {
  coarseDuty: 1000,
  fineDuty: 100,
  fineBandCg: 200,
  toleranceCg: 10,
  stableSpreadCg: 4,
  stableWindowUs: 500_000,
  rateWindowUs: 500_000,
  fitWindowUs: 150_000,
  flowGainDiv: 4,
  maxDoseUs: 60_000_000,
  neverExceedCg: 2_000_000,
  noProgressCg: 50,
  noProgressUs: 2_000_000,
  containerDropCg: 2000,
  staleUs: 300_000,
  topUpPulseUs: 0,
  topUpMax: 0,
  tauMinUs: 0,
  tauMaxUs: 2_000_000,
  outlierPct: 50,
  confirm: 3,
  learnDiv: 4,
  maxSettleUs: 5_000_000,
};

export interface Sample {
  /** Weight on the scale, centigrams (tared by the sampler or absolute: the controller tares itself). */
  cg: number;
  /** Sample time, microseconds (monotonic). */
  tUs: number;
  /** The sampler flagged a fault for this sample (saturation, overrun...). */
  fault?: boolean;
}

export interface MotorCommand {
  /** Duty from now on, permille (0 = stop). */
  duty: number;
  /** If set: stop the motor at exactly this time (us), before the next sample. */
  stopAtUs?: number;
}

export interface DoseRecord {
  targetCg: number;
  finalCg: number;
  errorCg: number;
  /** Mass that landed after the cut-off (cg). */
  inflightCg: number;
  /** Predicted in-flight mass at the cut-off (cg). */
  predictedInflightCg: number;
  result: DoseResult;
  reason?: AbortReason;
  durationUs: number;
  coarseUs: number;
  fineUs: number;
  settleUs: number;
  steps: number;
  topUps: number;
  /** tau after learning from this dose (us). */
  tauUs: number;
  /** This dose was ignored for learning as an outlier. */
  outlier: boolean;
}

/** Ring of recent samples for the slope and the stability window (fixed size, no allocation per step). */
class Window {
  private readonly t: Int32Array;
  private readonly w: Int32Array;
  private readonly base: number[] = [0];
  private n = 0;
  private head = 0;
  constructor(readonly size: number) {
    this.t = new Int32Array(size);
    this.w = new Int32Array(size);
  }
  reset(): void {
    this.n = 0;
    this.head = 0;
  }
  /** t relative to a base so it fits in Int32 (us; windows are well under 35 minutes). */
  push(tUs: number, cg: number): void {
    if (this.n === 0) this.base[0] = tUs;
    this.t[this.head] = tUs - this.base[0];
    this.w[this.head] = cg;
    this.head = (this.head + 1) % this.size;
    if (this.n < this.size) this.n++;
  }
  private idx(k: number): number {
    // k = 0 newest
    return (this.head - 1 - k + this.size * 2) % this.size;
  }
  /** Spread (max-min) of samples within spanUs of the newest; -1 if the window is not yet covered. */
  spread(spanUs: number): number {
    if (this.n === 0) return -1;
    const tNew = this.t[this.idx(0)];
    let min = this.w[this.idx(0)];
    let max = min;
    let covered = false;
    for (let k = 1; k < this.n; k++) {
      const i = this.idx(k);
      const dt = tNew - this.t[i];
      if (dt > spanUs) {
        covered = true;
        break;
      }
      if (this.w[i] < min) min = this.w[i];
      if (this.w[i] > max) max = this.w[i];
      if (dt === spanUs) covered = true;
    }
    return covered ? max - min : -1;
  }
  /** Mean weight (cg) of samples within spanUs of the newest. */
  mean(spanUs: number): number {
    const tNew = this.t[this.idx(0)];
    let s = 0;
    let c = 0;
    for (let k = 0; k < this.n; k++) {
      const i = this.idx(k);
      if (tNew - this.t[i] > spanUs) break;
      s += this.w[i];
      c++;
    }
    return c ? Math.round(s / c) : 0;
  }
  /**
   * The least-squares line over samples within spanUs of the newest, evaluated
   * at the newest sample's time: a weight estimate with less noise than one
   * sample and no lag on a steady ramp. Falls back to the newest sample.
   */
  fitNow(spanUs: number): number {
    const { c, st, sw } = this.sums(spanUs);
    if (c < 4) return this.w[this.idx(0)];
    // mean weight, plus the slope times how far the newest sample is after the mean time
    return Math.round(sw / c + (this.slopeCgPerS(spanUs) * st) / c / 10_000);
  }
  /** Count, sum of ages (0.1 ms units, integer) and sum of weights of the samples within spanUs of the newest. */
  private sums(spanUs: number): { c: number; st: number; sw: number } {
    const tNew = this.t[this.idx(0)];
    let c = 0;
    let st = 0;
    let sw = 0;
    for (let k = 0; k < this.n; k++) {
      const i = this.idx(k);
      const dt = tNew - this.t[i];
      if (dt > spanUs) break;
      st += Math.trunc(dt / 100); // 0.1 ms units keep the sums small and integer
      sw += this.w[i];
      c++;
    }
    return { c, st, sw };
  }
  /** Least-squares slope in cg/s over samples within spanUs of the newest; 0 if fewer than 3. */
  slopeCgPerS(spanUs: number): number {
    const tNew = this.t[this.idx(0)];
    const { c, st, sw } = this.sums(spanUs);
    if (c < 3) return 0;
    let num = 0;
    let den = 0;
    for (let k = 0; k < c; k++) {
      const i = this.idx(k);
      const x = c * Math.trunc((tNew - this.t[i]) / 100) - st; // scaled by c
      const y = c * this.w[i] - sw;
      num += x * y;
      den += x * x;
    }
    if (den === 0) return 0;
    // dt grows into the past, so negate; units: cg per 0.1 ms -> cg/s
    return -Math.round((num * 10_000) / den);
  }
}

export class DosingController {
  readonly p: DosingParams;
  private _state: DoseState = 'idle';
  private tauUs: number;
  private outlierRun = 0;
  private outlierTaus: number[] = [];
  private readonly win: Window;
  // dose in progress
  private targetCg = 0;
  private zeroCg = 0;
  private startUs = 0;
  private coarseStartUs = 0;
  private fineStartUs = 0;
  private settleStartUs = 0;
  private lastUs = 0;
  private steps = 0;
  private duty = 0;
  private maxCg = 0;
  private progressRefCg = 0;
  private progressRefUs = 0;
  private cutoffCg = 0;
  private cutoffRate = 0;
  private predictedInflight = 0;
  private topUps = 0;
  private topUpUntil = 0;
  private record: DoseRecord | null = null;
  /** Duty history (times us, duties permille), oldest first; bounded. */
  private readonly dT: number[] = [];
  private readonly dV: number[] = [];
  /** Measured flow (cg/s) per duty level; unknown levels scale from full duty. */
  private readonly flowByDuty = new Map<number, number>();
  private flowFull = 0;
  private cutoffAtUs = 0;

  constructor(params: Partial<DosingParams> = {}, tauUs = 350_000) {
    this.p = { ...DEFAULT_PARAMS, ...params };
    this.tauUs = Math.min(this.p.tauMaxUs, Math.max(this.p.tauMinUs, Math.round(tauUs)));
    this.win = new Window(256);
  }

  get state(): DoseState {
    return this._state;
  }
  get tau(): number {
    return this.tauUs;
  }
  get running(): boolean {
    return this._state !== 'idle' && this._state !== 'done' && this._state !== 'aborted';
  }
  /** The net weight (cg) of the current/last dose as of the last sample. */
  get netCg(): number {
    return this.lastNet;
  }
  private lastNet = 0;

  /** Starts a dose. Throws a CodedError (DOSE_START_CODES) for a bad target or when a dose is running. */
  start(targetCg: number, nowUs: number, opts: { tare?: boolean; zeroCg?: number } = {}): void {
    if (this.running) throw new CodedError('dose-already-running');
    if (!Number.isInteger(targetCg) || targetCg <= 0) throw new CodedError('bad-target', { cg: targetCg });
    if (targetCg >= this.p.neverExceedCg) throw new CodedError('beyond-never-exceed', { cg: targetCg, limit: this.p.neverExceedCg });
    this.targetCg = targetCg;
    this.startUs = nowUs;
    this.lastUs = nowUs;
    this.steps = 0;
    this.topUps = 0;
    this.topUpUntil = 0;
    this.record = null;
    this.win.reset();
    this.dT.length = 0;
    this.dV.length = 0;
    this.dT.push(nowUs);
    this.dV.push(0);
    this.zeroCg = opts.zeroCg ?? 0;
    this.cutoffCg = 0;
    this.cutoffRate = 0;
    this.cutoffAtUs = 0;
    this.predictedInflight = 0;
    this._state = opts.tare === false ? 'coarse' : 'taring';
    if (this._state === 'coarse') this.enterCoarse(nowUs);
    else this.duty = 0;
  }

  private enterCoarse(tUs: number): void {
    this._state = 'coarse';
    this.coarseStartUs = tUs;
    this.setDuty(this.p.coarseDuty, tUs);
    this.maxCg = 0;
    this.progressRefCg = 0;
    this.progressRefUs = tUs;
  }

  /** Stop input / close: motor off now, dose aborted. O(1). */
  abort(reason: AbortReason, nowUs: number): MotorCommand {
    this.duty = 0;
    if (this.running) this.finish('aborted', nowUs, reason);
    return { duty: 0 };
  }

  /** Called without a sample when the sensor may have gone quiet: enforces the stale-sensor limit. */
  checkStale(nowUs: number): MotorCommand | null {
    if (this.running && nowUs - this.lastUs > this.p.staleUs) return this.abort('stale-sensor', nowUs);
    return null;
  }

  /** One control step. Returns the motor command (duty from now on). */
  step(s: Sample): MotorCommand {
    if (!this.running) return { duty: 0 };
    this.steps++;
    const t = s.tUs;
    if (t - this.lastUs > this.p.staleUs) return this.abort('stale-sensor', t);
    this.lastUs = t;
    if (s.fault) return this.abort('sensor-fault', t);
    if (t - this.startUs > this.p.maxDoseUs) return this.abort('max-time', t);

    if (this._state === 'taring') {
      this.win.push(t, s.cg);
      const spread = this.win.spread(this.p.stableWindowUs);
      if (spread >= 0 && spread <= this.p.stableSpreadCg) {
        this.zeroCg = this.win.mean(this.p.stableWindowUs);
        this.win.reset();
        this.enterCoarse(t);
      } else if (t - this.startUs > this.p.maxSettleUs) {
        return this.abort('sensor-fault', t); // never stable: vibration or a bad cell
      }
      return { duty: this.duty };
    }

    const net = s.cg - this.zeroCg;
    this.lastNet = net;
    this.win.push(t, net);
    if (net >= this.p.neverExceedCg) return this.abort('never-exceed', t);
    if (net > this.maxCg) this.maxCg = net;
    if (this.maxCg - net > this.p.containerDropCg) return this.abort('container-removed', t);

    switch (this._state) {
      case 'coarse': {
        if (t - this.progressRefUs >= this.p.noProgressUs) {
          if (net - this.progressRefCg < this.p.noProgressCg) return this.abort('no-progress', t);
          this.progressRefCg = net;
          this.progressRefUs = t;
        }
        this.measureFlow(t);
        if (this.flowOf(this.p.coarseDuty) > 0 && net + this.inflight(t) >= this.targetCg - this.p.fineBandCg) {
          this._state = 'fine';
          this.fineStartUs = t;
          this.setDuty(this.p.fineDuty, t);
        }
        return { duty: this.duty };
      }
      case 'fine': {
        this.measureFlow(t);
        const inflight = this.inflight(t);
        const fit = this.p.fitWindowUs;
        // the fit only once the coarse material has landed (a steady ramp), else the newest sample
        const netNow = fit > 0 && t - this.fineStartUs >= this.tauUs + fit ? this.win.fitNow(fit) : net;
        const remaining = this.targetCg - netNow - inflight;
        if (remaining <= 0) return this.cutoff(t, netNow, inflight, t);
        const f = this.flowOf(this.p.fineDuty);
        if (f > 0) {
          // predicted final grows at the flow the motor produces now
          const dtUs = Math.trunc((remaining * 1_000_000) / f);
          if (dtUs < this.periodEst) return this.cutoff(t, netNow, inflight + Math.trunc((f * dtUs) / 1_000_000), t + dtUs);
        }
        return { duty: this.duty };
      }
      case 'settling': {
        if (this.topUpUntil > 0) {
          if (t >= this.topUpUntil) {
            this.topUpUntil = 0;
            this.duty = 0;
            this.settleStartUs = t;
            this.win.reset();
            this.win.push(t, net);
          }
          return { duty: this.duty };
        }
        const spread = this.win.spread(this.p.stableWindowUs);
        const settledFor = t - this.settleStartUs;
        if ((spread >= 0 && spread <= this.p.stableSpreadCg && settledFor >= this.tauUs) || settledFor > this.p.maxSettleUs) {
          const final = this.win.mean(Math.min(this.p.stableWindowUs, settledFor));
          const err = final - this.targetCg;
          if (err < -this.p.toleranceCg && this.topUps < this.p.topUpMax && this.p.topUpPulseUs > 0) {
            this.topUps++;
            this.topUpUntil = t + this.p.topUpPulseUs;
            this.duty = this.p.fineDuty;
            return { duty: this.duty, stopAtUs: this.topUpUntil };
          }
          this.finalCg = final;
          this.finish(err > this.p.toleranceCg ? 'over' : err < -this.p.toleranceCg ? 'under' : 'ok', t);
        }
        return { duty: 0 };
      }
      default:
        return { duty: this.duty };
    }
  }

  private finalCg = 0;
  private periodEst = 12_500;

  /** Tells the controller the sample period (us) so cut-offs between samples are scheduled. */
  setSamplePeriod(us: number): void {
    if (us > 0) this.periodEst = Math.round(us);
  }

  private cutoff(t: number, net: number, predictedInflight: number, atUs: number): MotorCommand {
    this._state = 'settling';
    this.settleStartUs = t;
    this.cutoffAtUs = atUs;
    // weight on the scale at the (possibly future) cut-off instant
    this.cutoffCg = net + Math.trunc((this.rateNow * Math.max(0, atUs - t)) / 1_000_000);
    this.cutoffRate = this.rateNow;
    this.predictedInflight = predictedInflight;
    this.setDuty(0, atUs);
    this.win.reset();
    this.win.push(t, net);
    return atUs > t ? { duty: this.p.fineDuty, stopAtUs: atUs } : { duty: 0 };
  }

  private rateNow = 0;

  private setDuty(duty: number, atUs: number): void {
    this.duty = duty;
    if (this.dV.length && this.dV[this.dV.length - 1] === duty) return;
    this.dT.push(atUs);
    this.dV.push(duty);
    if (this.dT.length > 64) {
      this.dT.shift();
      this.dV.shift();
    }
  }

  private dutyAt(tUs: number): number {
    for (let i = this.dT.length - 1; i >= 0; i--) if (this.dT[i] <= tUs) return this.dV[i];
    return 0;
  }

  /** Flow (cg/s) the motor produces at `duty`: measured, or scaled from full duty. */
  private flowOf(duty: number): number {
    if (duty <= 0) return 0;
    const m = this.flowByDuty.get(duty);
    if (m !== undefined) return m;
    return Math.trunc((this.flowFull * duty) / 1000);
  }

  /** Updates the flow estimate of the duty that ran tau ago, when it ran steadily over the rate window. */
  private measureFlow(t: number): void {
    this.rateNow = this.win.slopeCgPerS(this.p.rateWindowUs);
    // the samples in the slope window left the auger tau earlier; a margin covers an imprecise tau
    const margin = 100_000;
    const from = t - this.tauUs - this.p.rateWindowUs - margin;
    const to = t - this.tauUs + margin;
    if (from < this.coarseStartUs) return;
    const d = this.dutyAt(to);
    if (d <= 0 || this.dutyAt(from) !== d) return;
    for (let i = 0; i < this.dT.length; i++) if (this.dT[i] > from && this.dT[i] <= to) return;
    const prev = this.flowByDuty.get(d);
    const est = prev === undefined ? this.rateNow : prev + Math.trunc((this.rateNow - prev) / this.p.flowGainDiv);
    this.flowByDuty.set(d, est);
    if (d === 1000 || this.flowFull === 0) this.flowFull = Math.trunc((est * 1000) / d);
  }

  /** Mass (cg) released by the motor in (t - tau, t]: in flight, not yet on the scale. */
  private inflight(t: number): number {
    return this.released(t - this.tauUs, t);
  }

  /** Mass the motor released between two times, from the duty history. */
  private released(fromUs: number, toUs: number): number {
    let m = 0;
    for (let i = 0; i < this.dT.length; i++) {
      const a = Math.max(fromUs, this.dT[i]);
      const b = Math.min(toUs, i + 1 < this.dT.length ? this.dT[i + 1] : toUs);
      if (b > a) m += Math.trunc((this.flowOf(this.dV[i]) * (b - a)) / 1_000_000);
    }
    return m;
  }

  /** The tau that explains `landed` cg arriving after the cut-off: walk back from the cut-off. */
  private tauFor(landedCg: number): number {
    const tc = this.cutoffAtUs;
    let lo = 0;
    let hi = this.p.tauMaxUs * 2;
    for (let k = 0; k < 32 && hi - lo > 100; k++) {
      const mid = Math.trunc((lo + hi) / 2);
      if (this.released(tc - mid, tc) < landedCg) lo = mid;
      else hi = mid;
    }
    return hi;
  }

  private finish(result: DoseResult, t: number, reason?: AbortReason): void {
    const aborted = result === 'aborted';
    const final = aborted ? this.lastNet : this.finalCg;
    let outlier = false;
    const inflight = final - this.cutoffCg;
    if (!aborted && this.topUps === 0 && this.cutoffAtUs > 0) outlier = !this.learnTau(this.tauFor(Math.max(0, inflight)));
    const fineUs = this.fineStartUs > this.coarseStartUs ? this.settleStartUs - this.fineStartUs : 0;
    this.record = {
      targetCg: this.targetCg,
      finalCg: final,
      errorCg: final - this.targetCg,
      inflightCg: aborted ? 0 : inflight,
      predictedInflightCg: this.predictedInflight,
      result,
      reason,
      durationUs: t - this.startUs,
      coarseUs: Math.max(0, (this.fineStartUs > this.coarseStartUs ? this.fineStartUs : t) - this.coarseStartUs),
      fineUs: Math.max(0, fineUs),
      settleUs: aborted ? 0 : Math.max(0, t - this.settleStartUs),
      steps: this.steps,
      topUps: this.topUps,
      tauUs: this.tauUs,
      outlier,
    };
    this._state = aborted ? 'aborted' : 'done';
    this.duty = 0;
  }

  /** Learns tau from one dose's in-flight mass at a steady rate (used by tests and by learnTau's callers). */
  private learn(inflightCg: number, rateCgPerS: number): boolean {
    return this.learnTau(Math.round((Math.max(0, inflightCg) * 1_000_000) / rateCgPerS));
  }

  /** Learns tau from one dose's measured tau. Returns false when the dose was ignored as an outlier. */
  private learnTau(measured: number): boolean {
    const dev = Math.abs(measured - this.tauUs);
    if (this.tauUs > 0 && dev * 100 > this.tauUs * this.p.outlierPct) {
      this.outlierTaus.push(measured);
      this.outlierRun++;
      if (this.outlierRun < this.p.confirm) return false;
      // `confirm` outliers in a row: a real change; adopt their median.
      const sorted = [...this.outlierTaus].sort((a, b) => a - b);
      this.setTau(sorted[sorted.length >> 1]);
      this.outlierRun = 0;
      this.outlierTaus = [];
      return true;
    }
    this.outlierRun = 0;
    this.outlierTaus = [];
    this.setTau(this.tauUs + Math.trunc((measured - this.tauUs) / this.p.learnDiv));
    return true;
  }

  private setTau(us: number): void {
    this.tauUs = Math.min(this.p.tauMaxUs, Math.max(this.p.tauMinUs, us));
  }

  /** The record of the last finished dose (null while running or before the first). */
  lastRecord(): DoseRecord | null {
    return this.running ? null : this.record;
  }
}
