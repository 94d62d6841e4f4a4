// The dose record as the flow sees it (grams, seconds, milliseconds). Pure.
import type { LearnedPlant } from './dosing-core';
import { fineRippleFrom } from './ripple-source';
import type { DoseDone } from './dosing-protocol';

const r2 = (v: number): number => Math.round(v * 100) / 100;
const r3 = (v: number): number => Math.round(v * 1000) / 1000;

export function resultPayload(rec: DoseDone): Record<string, unknown> {
  return {
    target_g: rec.targetCg / 100,
    final_g: rec.finalCg / 100,
    error_g: rec.errorCg / 100,
    overshoot_g: Math.max(0, rec.errorCg) / 100,
    result: rec.result,
    ...(rec.reason ? { reason: rec.reason } : {}),
    duration_s: r3(rec.durationUs / 1e6),
    coarse_s: r3(rec.coarseUs / 1e6),
    fine_s: r3(rec.fineUs / 1e6),
    settle_s: r3(rec.settleUs / 1e6),
    inflight_g: rec.inflightCg / 100,
    predicted_inflight_g: rec.predictedInflightCg / 100,
    steps: rec.steps,
    step_latency_p99_ms: r3(rec.stepP99Us / 1000),
    top_ups: rec.topUps,
    tau_ms: r2(rec.tauUs / 1000),
    ...(rec.learned ? { learned: learnedPayload(rec.learned) } : {}),
    ...(rec.recipe !== undefined ? { recipe: rec.recipe } : {}),
  };
}

/**
 * What the controller learned of its plant, in the flow's units (grams,
 * seconds, milliseconds, percent). Takes a learned plant of any version: a
 * field it lacks reads as 0 (not measured), fields it does not know are left out.
 */
export function learnedPayload(l: LearnedPlant): Record<string, unknown> {
  const raw = l as unknown as Record<string, unknown>;
  const n = (k: string): number => {
    const v = raw[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : 0;
  };
  // flow_gps: the flow the controller plans with per duty, measured or (listed in flow_estimated) estimated from a
  // burst too short for a steady ramp; a measured flow wins over an estimate of the same duty
  const flow: Record<string, number> = {};
  const estimated: string[] = [];
  const add = (perDuty: unknown, isEstimate: boolean): void => {
    if (typeof perDuty !== 'object' || perDuty === null) return;
    for (const [duty, cgps] of Object.entries(perDuty as Record<string, unknown>)) {
      if (typeof cgps !== 'number' || !Number.isFinite(cgps) || !Number.isFinite(Number(duty))) continue;
      const key = `${Number(duty) / 10}%`;
      if (key in flow) continue;
      flow[key] = cgps / 100;
      if (isEstimate) estimated.push(key);
    }
  };
  add(raw.flowCgPerS, false);
  add(raw.flowEstCgPerS, true);
  const period = n('ripplePeriodUs');
  const finePeriod = n('fineRipplePeriodUs');
  return {
    doses: n('doses'),
    flow_gps: flow,
    flow_estimated: estimated,
    fine_duty_pct: n('fineDuty') / 10,
    delay_ms: r2(n('delayUs') / 1000),
    tau_ms: r2(n('tauUs') / 1000),
    coarse_tau_ms: r2(n('coarseTauUs') / 1000),
    // the motor's spin-up/coast lag fitted to the coarse spin-up (0: not measured, or a ripple too strong to tell it)
    lag_ms: r2(n('lagUs') / 1000),
    jitter_ms: r2(n('jitterUs') / 1000),
    fine_settle_ms: r2(n('fineSettleUs') / 1000),
    noise_g: n('noiseCg') / 100,
    ripple_g: n('rippleCg') / 100,
    ripple_hz: period > 0 ? r2(1e6 / period) : 0,
    // the ripple at fine speed: its own when a fine ramp (or several doses' fine ramps) showed it, else the coarse
    // ripple's period with its amplitude scaled to the fine flow, or none where that one is absent at fine speed
    fine_ripple_g: finePeriod > 0 ? n('fineRippleCg') / 100 : 0,
    fine_ripple_hz: finePeriod > 0 ? r2(1e6 / finePeriod) : 0,
    fine_ripple_from: fineRippleFrom(finePeriod, raw.fineRippleAcrossDoses === true, period, n('coarseNotAtFine'), n('coarseNotAtFineUs')),
    // how the ripple lands in the motor's coast, learned from the doses the ripple model cut
    ripple_coast: n('coastWay') === 1 ? 'filtered' : n('coastWay') === 2 ? 'as_ramp' : 'undecided',
    outliers: n('outliers'),
  };
}
