// The simulated world on the load cell: material flowing in at a rate set by
// the motor duty, a transport delay (material in flight when the motor stops
// or slows), flow ripple at the auger's rotation, a weight placed on the cell
// (a container, a calibration weight) and, for controller tests, a noisy
// reading. Deterministic (seeded). Runs on any clock: the caller advances it.
// The simulated HX711 (sim-hx711.ts) turns its mass into ADC counts.

export interface PlantParams {
  /** flow at full duty, g/s */
  coarseGps: number;
  /** transport delay + stop latency, s */
  delayS: number;
  /** ripple amplitude (fraction) and frequency (Hz) */
  ripple: number;
  rippleHz: number;
  /** reading noise sigma, g */
  noiseG: number;
  /** jitter of the delay, s (uniform +-) */
  jitterS: number;
  seed: number;
  /** Motor spin-up / coast: first-order lag time constant, s (0 = instant). */
  lagS?: number;
  /** Dead band at low duty, permille: no flow below it; above it the flow rises linearly to coarseGps at full duty. */
  deadBand?: number;
  /** Slow flow drift, fraction per minute of motor running (a hopper emptying: negative); the flow never drifts below half. */
  driftPerMin?: number;
  /** The ripple follows the motor's speed (one per turn of an auger): rippleHz is then its frequency at full speed. Default: a fixed frequency. */
  rippleFollowsSpeed?: boolean;
}

/** The reference plant (the demo's). A profile of the envelope overrides any of it. */
export const DEFAULT_PLANT: PlantParams = { coarseGps: 20, delayS: 0.35, ripple: 0.05, rippleHz: 2, noiseG: 0.01, jitterS: 0.005, seed: 1, lagS: 0, deadBand: 0, driftPerMin: 0 };

/** Flow (g/s) of a plant at a steady duty (permille): the physics, for benchmarks and tests (never for a controller). */
export function flowAt(p: PlantParams, duty: number): number {
  const db = p.deadBand ?? 0;
  return duty <= db ? 0 : (p.coarseGps * (duty - db)) / (1000 - db);
}

export class Plant {
  /** grams landed on the scale */
  mass = 0;
  private t = 0; // s
  private readonly rnd: () => number;
  /** duty changes waiting to reach the scale: [time they take effect, duty permille] */
  private pending: Array<[number, number]> = [];
  private effDuty = 0;
  /** When the latest duty change takes effect (s): changes apply in the order they were made. */
  private lastEffect = -Infinity;
  private phase = 0;
  /** Motor speed after the first-order lag, permille (follows the delayed duty). */
  private speed = 0;
  private runS = 0;
  flowScale = 1;
  jammed = false;
  /** A weight placed on the cell besides the dosed material (container, calibration weight), g. */
  placedG = 0;

  constructor(readonly p: PlantParams = DEFAULT_PLANT) {
    this.rnd = xorshift32(p.seed);
  }

  get timeUs(): number {
    return Math.round(this.t * 1e6);
  }

  /** The motor duty changes at time atUs (default: now). */
  setDuty(permille: number, atUs?: number): void {
    const at = (atUs ?? this.timeUs) / 1e6;
    const jitter = (this.rnd() * 2 - 1) * this.p.jitterS;
    // The delay jitters, but the material cannot overtake itself: a later
    // command never takes effect before an earlier one (a stop right after a
    // repeated "full speed" must not be undone by it).
    const takesEffect = Math.max(at + this.p.delayS + jitter, this.lastEffect);
    this.lastEffect = takesEffect;
    this.pending.push([takesEffect, permille]);
  }

  /** Advances to time tUs in 1 ms steps. */
  advance(tUs: number): void {
    const end = tUs / 1e6;
    const dt = 0.001;
    while (this.t < end - 1e-12) {
      const step = Math.min(dt, end - this.t);
      while (this.pending.length && this.pending[0][0] <= this.t) this.effDuty = this.pending.shift()![1];
      const lag = this.p.lagS ?? 0;
      this.speed = lag > 0 ? this.speed + (this.effDuty - this.speed) * Math.min(1, step / lag) : this.effDuty;
      this.phase += 2 * Math.PI * this.p.rippleHz * step * (this.p.rippleFollowsSpeed ? this.speed / 1000 : 1);
      if (Math.abs(this.speed - this.effDuty) < 0.01) this.speed = this.effDuty;
      if (this.speed > 0) this.runS += step;
      const drift = 1 + ((this.p.driftPerMin ?? 0) * this.runS) / 60;
      const flow = this.jammed ? 0 : flowAt(this.p, this.speed) * this.flowScale * Math.max(0.5, drift);
      this.mass += flow * (1 + this.p.ripple * Math.sin(this.phase)) * step;
      this.t += step;
    }
  }

  /** Everything on the cell now, g. */
  get totalG(): number {
    return this.mass + this.placedG;
  }

  /** Removes the dosed material (the container is emptied or taken away). */
  empty(): void {
    this.mass = 0;
  }

  /** Standard normal deviate from the seeded generator. */
  gauss(): number {
    return gaussian(this.rnd);
  }

  /** Uniform in [0, 1) from the seeded generator. */
  uniform(): number {
    return this.rnd();
  }

  /** A noisy reading in centigrams (Box-Muller). */
  readCg(): number {
    return Math.round((this.mass + this.gauss() * this.p.noiseG) * 100);
  }
}

/** A standard normal deviate from a uniform generator (Box-Muller: two draws). */
export function gaussian(rnd: () => number): number {
  const u = Math.max(1e-12, rnd());
  const v = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A seeded xorshift32 generator of uniform numbers in [0, 1) (seed 0 counts as 1). */
export function xorshift32(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}
