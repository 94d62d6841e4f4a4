// Where the dosing controller's fine-phase ripple period comes from, read off a learned plant: used by the controller
// (dosing-core) and by the result and the editor's table (dose-result) on the flow engine's thread. Pure.

/**
 * The coarse ripple's period cp is ruled out at fine speed: 2 or more fine ramps counted against it (coarseNotAtFine,
 * coarseNotAtFineUs of the learned plant) and cp within 15 % of the period they were counted with.
 */
export function coarsePeriodRuledOutAtFine(count: number, atUs: number, cp: number): boolean {
  return count >= 2 && cp > 0 && Math.abs(cp - atUs) * 100 <= 15 * atUs;
}

/**
 * Where the fine phase's ripple period comes from: its own, found on one fine ramp or across doses' fine ramps; the
 * coarse ripple's (a fixed frequency assumed); none, the coarse ripple being absent at fine speed (it follows the
 * motor's speed); none seen at all.
 */
export type FineRippleFrom = 'fine_ramp' | 'across_doses' | 'coarse_ramp' | 'not_at_fine' | 'none';

export function fineRippleFrom(fineRipplePeriodUs: number, acrossDoses: boolean, ripplePeriodUs: number, notAtFine: number, notAtFineUs: number): FineRippleFrom {
  if (fineRipplePeriodUs > 0) return acrossDoses ? 'across_doses' : 'fine_ramp';
  if (!(ripplePeriodUs > 0)) return 'none';
  return coarsePeriodRuledOutAtFine(notAtFine, notAtFineUs, ripplePeriodUs) ? 'not_at_fine' : 'coarse_ramp';
}
