// A simulated HX711 at the bit level, with the load cell and the dosed
// material behind it. It raises data-ready (DOUT falls) on its own crystal
// schedule, shifts the 24-bit two's complement code out MSB first on PD_SCK
// pulses, takes the gain of the next conversion from the pulse count, powers
// down when PD_SCK stays high for 60 us or more (the rest of the frame reads
// as 1s, then it restarts at A/128), outputs unsettled values for 4
// conversions after power-up or a gain change, and saturates at 0x7FFFFF /
// 0x800000. Deterministic with a seed. Float arithmetic is fine here: this is
// the simulated world, not the control path.
import type { Clock } from './clock';
import { encode24, type Hx711Pins, POWER_DOWN_US } from './hx711-protocol';
import { Plant, type PlantParams } from './sim-world';

export interface SimChipOptions {
  sps: 10 | 80;
  /** Counts with nothing on the cell (channel A, gain 128). */
  zeroCounts: number;
  /** Counts per gram at channel A, gain 128. */
  countsPerGram: number;
  /** Reading noise, counts (sigma, gain 128). */
  noiseCounts: number;
  /** Slow drift, counts per minute (gain 128). */
  driftCountsPerMin: number;
  /** Nominal PD_SCK high time of one pulse, us (a real bit-bang takes a few us). */
  pulseHighUs: number;
  /** The material model. */
  plant: PlantParams;
  seed: number;
  /** Where the modelled uint32 tick starts (tests start it near 2^31 or 2^32 to cross the wrap). */
  tickStart: number;
}

export const DEFAULT_SIM_CHIP: SimChipOptions = {
  sps: 80,
  zeroCounts: 84_000,
  countsPerGram: 420,
  noiseCounts: 6,
  driftCountsPerMin: 2,
  pulseHighUs: 2,
  plant: { coarseGps: 20, delayS: 0.35, ripple: 0.05, rippleHz: 2, noiseG: 0, jitterS: 0.005, seed: 1 },
  seed: 1,
  tickStart: 0,
};

/** Faults a test or a demo can switch on. */
export interface SimFaults {
  /** No more conversions (a cut DOUT wire, a dead chip). */
  stall?: boolean;
  /** Probability that a PD_SCK pulse is stretched past the power-down limit (a preempted thread). */
  stretchProb?: number;
  /** The chip repeats its last code. */
  stuck?: boolean;
}

type Channel = 'A128' | 'B32' | 'A64';
const NEXT_GAIN: Record<number, Channel> = { 25: 'A128', 26: 'B32', 27: 'A64' };

export class SimHx711 implements Hx711Pins {
  readonly world: Plant;
  private readonly o: SimChipOptions;
  private readonly period: number;
  private readonly t0: number;
  private onEdge: ((edgeUs: number) => void) | null = null;
  private cancel: (() => void) | null = null;
  private nextEdgeUs = 0;
  private doutLevel: 0 | 1 = 1;
  private code = 0;
  private bit = 0;
  private pulses = 0;
  private stretched = false;
  private gain: Channel = 'A128';
  private settleLeft = 4;
  private poweredDown = false;
  private lastCode = 0;
  /** Modelled bus time, us: the sum of the pulses' high times (what tick() counts). */
  private busUs = 0;
  faults: SimFaults = {};
  /** Conversions made, and frames the host lost to a power-down. */
  conversions = 0;
  powerDowns = 0;
  /** Conversions overwritten before the host read them (a late reader lost them). */
  overwritten = 0;
  /** Data-ready time of the latest conversion, us on the clock (its crystal schedule). */
  lastEdgeUs = 0;
  /** DOUT fell since the last data-ready "interrupt" was raised. */
  private edgePending = false;

  constructor(
    private readonly clock: Clock,
    opts: Partial<SimChipOptions> = {},
  ) {
    this.o = { ...DEFAULT_SIM_CHIP, ...opts, plant: { ...DEFAULT_SIM_CHIP.plant, ...(opts.plant ?? {}) } };
    this.period = this.o.sps === 80 ? 12_500 : 100_000;
    this.world = new Plant({ ...this.o.plant, seed: this.o.seed });
    this.t0 = clock.nowUs();
  }

  get periodUs(): number {
    return this.period;
  }

  /** Starts conversions; onEdge(edgeUs) is the DOUT falling edge (the "interrupt"). */
  start(onEdge: (edgeUs: number) => void): void {
    this.onEdge = onEdge;
    this.restart();
  }

  stop(): void {
    this.onEdge = null;
    this.cancel?.();
    this.cancel = null;
  }

  /** Motor duty (permille), effective at the cell after the transport delay. */
  setMotor(permille: number): void {
    this.world.setDuty(permille, this.clock.nowUs() - this.t0);
  }

  /** Host holds PD_SCK high: the chip powers down until it goes low. */
  powerDown(): void {
    this.poweredDown = true;
    this.doutLevel = 1;
    this.cancel?.();
    this.cancel = null;
  }

  /** PD_SCK low after a power-down: reset to A/128 and settle. */
  powerUp(): void {
    if (!this.poweredDown) return;
    this.poweredDown = false;
    this.gain = 'A128';
    this.restart();
  }

  get isPoweredDown(): boolean {
    return this.poweredDown;
  }

  // ---- pins ----
  /**
   * A uint32 microsecond tick that advances by the modelled pulses only: the
   * host's guard times the modelled pulse (as sckLow's power-down does), so a
   * simulated read is not disturbed by the host thread being preempted.
   */
  tick(): number {
    return (this.o.tickStart + this.busUs) >>> 0;
  }

  /** Runs the conversions that are due by now (a caller that polls DOUT from a blocked loop, see the pigpio stand-in). */
  catchUp(): void {
    while (this.onEdge && !this.poweredDown && this.clock.nowUs() >= this.nextEdgeUs) this.convert();
  }

  dout(): 0 | 1 {
    if (this.bit === 0) this.advance(); // not mid-frame: DOUT follows the crystal
    return this.doutLevel;
  }

  sckHigh(): 0 | 1 {
    const p = this.faults.stretchProb ?? 0;
    this.stretched = p > 0 && this.world.uniform() < p;
    if (this.poweredDown) return 1;
    this.pulses++;
    if (this.bit < 24 && this.doutLevel === 0) {
      const b = ((this.code >> (23 - this.bit)) & 1) as 0 | 1;
      this.bit++;
      return b;
    }
    // gain pulses (25th..27th): DOUT goes high after the 25th
    this.doutLevel = 1;
    return 1;
  }

  sckLow(): number {
    // The modelled pulse, not the host's wall time: a simulated chip is not disturbed when the
    // host thread is preempted (the stretch fault models that on purpose, deterministically).
    const high = this.o.pulseHighUs + (this.stretched ? 2 * POWER_DOWN_US : 0);
    this.stretched = false;
    this.busUs += high;
    if (high >= POWER_DOWN_US && !this.poweredDown) {
      // powered down mid-frame, then up again now that PD_SCK is low: the rest reads as 1s
      this.powerDowns++;
      this.doutLevel = 1;
      this.bit = 24;
      this.pulses = 0;
      this.gain = 'A128';
      this.restart();
      return high;
    }
    return high;
  }

  // ---- conversions ----
  private restart(): void {
    this.cancel?.();
    this.settleLeft = 4;
    this.edgePending = false;
    this.nextEdgeUs = this.clock.nowUs() + this.period;
    this.schedule();
  }

  private schedule(): void {
    this.cancel?.();
    this.cancel = null;
    if (!this.onEdge || this.poweredDown) return;
    this.cancel = this.clock.at(this.nextEdgeUs, () => this.convert());
  }

  /**
   * The chip's own crystal: every conversion due by now (t0 + k * period) is
   * made whenever anything looks at the chip (its timer, or the host reading
   * DOUT), not when the reader gets around to it. A reader thread that was
   * busy (or preempted) past a data-ready finds only the latest conversion:
   * the ones before it were overwritten unread (counted in `overwritten`), as
   * on the real chip. DOUT reflects the crystal too, so a watchdog that looks
   * at DOUT after a starved thread sees the waiting conversion, not a stale
   * high level.
   */
  private advance(): void {
    if (!this.onEdge || this.poweredDown) return;
    const now = this.clock.nowUs();
    while (this.nextEdgeUs <= now) {
      const edge = this.nextEdgeUs;
      this.nextEdgeUs += this.period;
      if (this.faults.stall) continue;
      this.conversions++;
      this.lastEdgeUs = edge;
      // DOUT low and no frame started: the last conversion was never read
      if (this.doutLevel === 0 && this.bit === 0) this.overwritten++;
      if (this.pulses >= 25) {
        // the last frame's pulse count selects this conversion's channel and gain
        const g = NEXT_GAIN[Math.min(27, this.pulses)];
        if (g !== this.gain) {
          this.gain = g;
          this.settleLeft = 4;
        }
      }
      this.code = this.faults.stuck && this.conversions > 1 ? this.lastCode : this.sample(edge);
      this.lastCode = this.code;
      this.bit = 0;
      this.pulses = 0;
      if (this.doutLevel === 1) this.edgePending = true;
      this.doutLevel = 0;
    }
  }

  /**
   * The timer standing for the crystal: makes the due conversions and raises
   * the reader's data-ready "interrupt" with the edge time of the conversion it
   * will read, so the reader's lateness is measured from the chip's own
   * data-ready. A conversion the host did not read is overwritten without a new
   * falling edge; one the host already read (found by polling DOUT) raises none.
   */
  private convert(): void {
    this.advance();
    const fire = this.edgePending && this.doutLevel === 0 && this.bit === 0;
    this.edgePending = false;
    if (fire) this.onEdge?.(this.lastEdgeUs);
    this.schedule();
  }

  private sample(edgeUs: number): number {
    const rel = edgeUs - this.t0;
    this.world.advance(rel);
    const o = this.o;
    let v: number;
    const noise = this.world.gauss() * o.noiseCounts;
    const drift = (o.driftCountsPerMin * rel) / 60e6;
    if (this.gain === 'B32') v = 1_200 + noise / 4; // channel B: nothing connected
    else {
      const scale = this.gain === 'A64' ? 0.5 : 1;
      v = (o.zeroCounts + this.world.totalG * o.countsPerGram + noise + drift) * scale;
    }
    if (this.settleLeft > 0) {
      this.settleLeft--;
      v += (this.world.uniform() - 0.5) * 200_000; // unsettled after power-up or a gain change
    }
    return encode24(Math.round(v));
  }
}
