// The simulated backend of the plant's HAL: two heaters with first-order
// thermal lag toward the temperature their duty holds, a motor whose speed
// ramps toward its set point, and GPIO lines kept in memory. A test bed only:
// the controller (plant-core.ts) reads none of these figures.
import { GPIO_PINS, type GpioPin, HEATERS, type PlantHal } from './plant-core';

export interface SimPlantOptions {
  ambientC: number;
  /** Steady-state rise per percent of duty, °C. */
  riseCPerPct: number;
  /** Thermal time constant, s. */
  tauS: number;
  /** Motor ramp, rpm per second. */
  rampRpmS: number;
  /** Starting temperatures (default: ambient). */
  startC?: number[];
}

const SIM_DEFAULTS: SimPlantOptions = { ambientC: 25, riseCPerPct: 5, tauS: 20, rampRpmS: 900 };

export class SimPlantHal implements PlantHal {
  private readonly o: SimPlantOptions;
  private readonly temps: number[];
  private readonly duty: number[] = new Array<number>(HEATERS).fill(0);
  private rpm = 0;
  private rpmSet = 0;
  private readonly pins = new Map<GpioPin, boolean>(GPIO_PINS.map((p) => [p, false]));

  constructor(opts: Partial<SimPlantOptions> = {}) {
    this.o = { ...SIM_DEFAULTS, ...opts };
    this.temps = Array.from({ length: HEATERS }, (_, i) => this.o.startC?.[i] ?? this.o.ambientC);
  }

  /** Advances the physics by dtS seconds. */
  advance(dtS: number): void {
    const a = 1 - Math.exp(-Math.max(0, dtS) / this.o.tauS);
    for (let h = 0; h < HEATERS; h++) {
      const eq = this.o.ambientC + this.o.riseCPerPct * this.duty[h];
      this.temps[h] += (eq - this.temps[h]) * a;
    }
    const step = this.o.rampRpmS * Math.max(0, dtS);
    if (this.rpm < this.rpmSet) this.rpm = Math.min(this.rpmSet, this.rpm + step);
    else if (this.rpm > this.rpmSet) this.rpm = Math.max(this.rpmSet, this.rpm - step);
  }

  /** Test bed only: forces a temperature or a speed (a stuck relay, a runaway drive). */
  disturb(d: { tempC?: number[]; rpm?: number }): void {
    d.tempC?.forEach((t, i) => {
      if (i < HEATERS && Number.isFinite(t)) this.temps[i] = t;
    });
    if (d.rpm !== undefined && Number.isFinite(d.rpm)) this.rpm = d.rpm;
  }

  readTemp(h: number): number {
    return this.temps[h];
  }
  setHeater(h: number, dutyPct: number): void {
    this.duty[h] = dutyPct;
  }
  readRpm(): number {
    return this.rpm;
  }
  setMotor(rpm: number): void {
    this.rpmSet = rpm;
  }
  writePin(pin: GpioPin, on: boolean): void {
    this.pins.set(pin, on);
  }
  readPin(pin: GpioPin): boolean {
    return this.pins.get(pin) ?? false;
  }
}
