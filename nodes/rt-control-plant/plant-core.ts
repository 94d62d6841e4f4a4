// Pure logic of rt-control-plant (no Node-RED, no threads): the heater + motor
// controller with its safety checks, run in the plant's worker over a
// PlantHal; the latest-state snapshot in a SharedArrayBuffer (a seqlock:
// the worker writes, the flow engine reads without ever waiting); and the
// HTTP API's request validation (schema, ranges, body size).
import { type Coded, coded } from '../shared/coded';

export const HEATERS = 2;

/** The device's accepted ranges for control writes (from the validation plan). */
export const CONTROL_RANGES = {
  target: { min: 210, max: 245, unit: 'C' },
  duty: { min: 25, max: 55, unit: '%' },
  rpm: { min: 0, max: 1800, unit: 'rpm' },
} as const;

export const CONTROL_FIELDS = ['target1', 'target2', 'duty1', 'duty2', 'rpm'] as const;
export type ControlField = (typeof CONTROL_FIELDS)[number];
export type ControlSet = Partial<Record<ControlField, number>>;

/** GPIO lines: the flow may write the relays and the user LED; the plant drives the status LEDs. */
export const GPIO_WRITABLE = ['relay1', 'relay2', 'led_user'] as const;
export const GPIO_PINS = ['led_run', 'led_fault', 'led_log', ...GPIO_WRITABLE] as const;
export type GpioPin = (typeof GPIO_PINS)[number];

/** The hardware seen by the controller: heater and motor outputs, sensors, GPIO lines. */
export interface PlantHal {
  readTemp(heater: number): number;
  /** Heater PWM duty, percent (0 = off). */
  setHeater(heater: number, dutyPct: number): void;
  readRpm(): number;
  /** Motor speed set point, rpm (0 = stop). */
  setMotor(rpm: number): void;
  writePin(pin: GpioPin, on: boolean): void;
  readPin(pin: GpioPin): boolean;
}

export interface SafetyConfig {
  /** A heater at or above this temperature is cut until it has cooled by `hysteresisC`. */
  overTempC: number;
  hysteresisC: number;
  /** Motor speed above this stops the motor until the next speed write. */
  rpmLimit: number;
}

export const SAFETY_BITS = { overTemp1: 1, overTemp2: 2, overspeed: 4 } as const;

/** The snapshot's fields (Float64 slots after the seqlock word). */
export const F = {
  ts: 0,
  started: 1,
  temp1: 2,
  temp2: 3,
  duty1: 4,
  duty2: 5,
  target1: 6,
  target2: 7,
  dutySet1: 8,
  dutySet2: 9,
  rpm: 10,
  rpmSet: 11,
  safety: 12,
  gpio: 13,
  tripsOverTemp: 14,
  tripsOverspeed: 15,
  writes: 16,
  ticks: 17,
  writeTs: 18,
} as const;
const FIELD_COUNT = 19;
export const SNAPSHOT_BYTES = 8 + FIELD_COUNT * 8;

export interface PlantSnapshot {
  ts: number;
  started: number;
  temps: number[];
  duties: number[];
  targets: number[];
  dutySets: number[];
  rpm: number;
  rpmSet: number;
  safety: { overTemp: boolean[]; overspeed: boolean; trips: { overTemp: number; overspeed: number } };
  gpio: Record<GpioPin, boolean>;
  writes: number;
  ticks: number;
  writeTs: number;
}

/** Seqlock over a SharedArrayBuffer: one writer (the worker), any number of readers that never block it. */
export class SnapshotCell {
  private readonly seq: Int32Array;
  private readonly f: Float64Array;
  private readonly tmp = new Float64Array(FIELD_COUNT);
  /** The last stable copy this reader got: served when the writer is caught mid-write. */
  private readonly good = new Float64Array(FIELD_COUNT);
  private hasGood = false;
  constructor(readonly sab: SharedArrayBuffer) {
    this.seq = new Int32Array(sab, 0, 2);
    this.f = new Float64Array(sab, 8, FIELD_COUNT);
  }
  static create(): SnapshotCell {
    return new SnapshotCell(new SharedArrayBuffer(SNAPSHOT_BYTES));
  }
  write(values: Float64Array): void {
    Atomics.add(this.seq, 0, 1); // odd: being written
    this.f.set(values);
    Atomics.add(this.seq, 0, 1); // even: stable
  }
  /**
   * The latest stable copy; null only before the first write. A reader never
   * waits: when the writer is caught mid-write on every try (a worker thread
   * preempted between its two increments, on a busy machine), the previous
   * stable copy is returned, which is then still the latest complete state.
   */
  readRaw(): Float64Array | null {
    for (let i = 0; i < 64; i++) {
      const s1 = Atomics.load(this.seq, 0);
      if (s1 === 0) return null;
      if (s1 & 1) continue;
      this.tmp.set(this.f);
      if (Atomics.load(this.seq, 0) === s1) {
        this.good.set(this.tmp);
        this.hasGood = true;
        return this.tmp;
      }
    }
    return this.hasGood ? this.good : null;
  }

  /** Test hook: marks the cell as being written (as a preempted writer leaves it). */
  holdWrite(): void {
    Atomics.add(this.seq, 0, 1);
  }
  releaseWrite(): void {
    Atomics.add(this.seq, 0, 1);
  }
  read(): PlantSnapshot | null {
    const v = this.readRaw();
    return v ? decodeSnapshot(v) : null;
  }
}

export function decodeSnapshot(v: Float64Array): PlantSnapshot {
  const safety = v[F.safety];
  const bits = v[F.gpio];
  const gpio = {} as Record<GpioPin, boolean>;
  GPIO_PINS.forEach((p, i) => (gpio[p] = (bits & (1 << i)) !== 0));
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  return {
    ts: v[F.ts],
    started: v[F.started],
    temps: [r1(v[F.temp1]), r1(v[F.temp2])],
    duties: [r1(v[F.duty1]), r1(v[F.duty2])],
    targets: [v[F.target1], v[F.target2]],
    dutySets: [v[F.dutySet1], v[F.dutySet2]],
    rpm: Math.round(v[F.rpm]),
    rpmSet: v[F.rpmSet],
    safety: {
      overTemp: [(safety & SAFETY_BITS.overTemp1) !== 0, (safety & SAFETY_BITS.overTemp2) !== 0],
      overspeed: (safety & SAFETY_BITS.overspeed) !== 0,
      trips: { overTemp: v[F.tripsOverTemp], overspeed: v[F.tripsOverspeed] },
    },
    gpio,
    writes: v[F.writes],
    ticks: v[F.ticks],
    writeTs: v[F.writeTs],
  };
}

export interface Setpoints {
  targets: number[];
  dutySets: number[];
  rpmSet: number;
}

/**
 * The controller: per heater a thermostat (on at its duty below target - 1 °C,
 * off at target) with an over-temperature cut-out; the motor follows its set
 * point; a speed above the limit stops it. Runs every tick in the worker.
 */
export class PlantController {
  readonly sp: Setpoints;
  private heating: boolean[] = new Array<boolean>(HEATERS).fill(false);
  private applied: number[] = new Array<number>(HEATERS).fill(0);
  private overTemp: boolean[] = new Array<boolean>(HEATERS).fill(false);
  private overspeed = false;
  private trips = { overTemp: 0, overspeed: 0 };
  private writes = 0;
  private writeTs = 0;
  private ticks = 0;
  private readonly out = new Float64Array(FIELD_COUNT);

  constructor(
    private readonly hal: PlantHal,
    private readonly safety: SafetyConfig,
    initial: Setpoints,
    private readonly started: number,
  ) {
    this.sp = { targets: [...initial.targets], dutySets: [...initial.dutySets], rpmSet: initial.rpmSet };
    hal.setMotor(this.sp.rpmSet);
  }

  /** Applies a validated write; returns the set points now in force. */
  apply(set: ControlSet, now: number): Setpoints & { overspeed: boolean } {
    for (let h = 0; h < HEATERS; h++) {
      const t = set[`target${h + 1}` as ControlField];
      const d = set[`duty${h + 1}` as ControlField];
      if (t !== undefined) this.sp.targets[h] = t;
      if (d !== undefined) this.sp.dutySets[h] = d;
    }
    if (set.rpm !== undefined) {
      this.sp.rpmSet = set.rpm;
      // A speed write acknowledges an overspeed stop.
      this.overspeed = false;
      this.hal.setMotor(set.rpm);
    }
    this.writes++;
    this.writeTs = now;
    return { targets: [...this.sp.targets], dutySets: [...this.sp.dutySets], rpmSet: this.sp.rpmSet, overspeed: this.overspeed };
  }

  tick(now: number, logging: boolean): void {
    this.ticks++;
    for (let h = 0; h < HEATERS; h++) {
      const temp = this.hal.readTemp(h);
      if (temp >= this.safety.overTempC) {
        if (!this.overTemp[h]) this.trips.overTemp++;
        this.overTemp[h] = true;
      } else if (this.overTemp[h] && temp < this.safety.overTempC - this.safety.hysteresisC) {
        this.overTemp[h] = false;
      }
      if (temp < this.sp.targets[h] - 1) this.heating[h] = true;
      else if (temp >= this.sp.targets[h]) this.heating[h] = false;
      const duty = this.overTemp[h] ? 0 : this.heating[h] ? this.sp.dutySets[h] : 0;
      if (duty !== this.applied[h]) this.hal.setHeater(h, duty);
      this.applied[h] = duty;
    }
    const rpm = this.hal.readRpm();
    if (rpm > this.safety.rpmLimit && !this.overspeed) {
      this.overspeed = true;
      this.trips.overspeed++;
      this.hal.setMotor(0);
    }
    const fault = this.overspeed || this.overTemp.some(Boolean);
    this.hal.writePin('led_fault', fault);
    this.hal.writePin('led_run', !fault && (rpm > 0 || this.applied.some((d) => d > 0)));
    this.hal.writePin('led_log', logging);
    this.publish(now, rpm);
  }

  private publish(now: number, rpm: number): void {
    const o = this.out;
    o[F.ts] = now;
    o[F.started] = this.started;
    o[F.temp1] = this.hal.readTemp(0);
    o[F.temp2] = this.hal.readTemp(1);
    o[F.duty1] = this.applied[0];
    o[F.duty2] = this.applied[1];
    o[F.target1] = this.sp.targets[0];
    o[F.target2] = this.sp.targets[1];
    o[F.dutySet1] = this.sp.dutySets[0];
    o[F.dutySet2] = this.sp.dutySets[1];
    o[F.rpm] = rpm;
    o[F.rpmSet] = this.overspeed ? 0 : this.sp.rpmSet;
    o[F.safety] = (this.overTemp[0] ? SAFETY_BITS.overTemp1 : 0) | (this.overTemp[1] ? SAFETY_BITS.overTemp2 : 0) | (this.overspeed ? SAFETY_BITS.overspeed : 0);
    let bits = 0;
    GPIO_PINS.forEach((p, i) => {
      if (this.hal.readPin(p)) bits |= 1 << i;
    });
    o[F.gpio] = bits;
    o[F.tripsOverTemp] = this.trips.overTemp;
    o[F.tripsOverspeed] = this.trips.overspeed;
    o[F.writes] = this.writes;
    o[F.ticks] = this.ticks;
    o[F.writeTs] = this.writeTs;
  }

  /** The values of the last tick, for the snapshot cell. */
  get values(): Float64Array {
    return this.out;
  }

  /** Everything off: heaters, motor, status LEDs. */
  shutdown(): void {
    for (let h = 0; h < HEATERS; h++) this.hal.setHeater(h, 0);
    this.hal.setMotor(0);
    this.hal.writePin('led_run', false);
  }
}

// ---------------------------------------------------------------- validation

/** A refused request: the HTTP status and a JSON body naming the field and what it accepts. */
export interface Refusal {
  status: 400 | 413 | 415;
  body: { error: string; field?: string; allowed?: unknown; got?: unknown; limit?: number };
  /** For the log and a Catch node. */
  why: Coded;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

const refuse = (status: Refusal['status'], body: Refusal['body']): { ok: false; refusal: Refusal } => ({
  ok: false,
  refusal: { status, body, why: coded(`bad-${body.error}`, { field: body.field ?? '', allowed: body.allowed === undefined ? '' : JSON.stringify(body.allowed) }) },
});

export const REFUSAL_CODES = ['bad-too-large', 'bad-not-object', 'bad-empty', 'bad-unknown-field', 'bad-not-number', 'bad-out-of-range', 'bad-not-boolean'] as const;

/** The request body's size in bytes: its Content-Length, else its JSON length. */
export function bodySize(contentLength: unknown, body: unknown): number {
  const n = Number(contentLength);
  if (Number.isFinite(n) && n >= 0 && contentLength !== undefined && contentLength !== '') return n;
  try {
    return Buffer.byteLength(JSON.stringify(body ?? null));
  } catch {
    return Infinity;
  }
}

function plainObject(body: unknown): body is Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && !Buffer.isBuffer(body);
}

function rangeOf(field: ControlField): { min: number; max: number; unit: string } {
  return field === 'rpm' ? CONTROL_RANGES.rpm : field.startsWith('target') ? CONTROL_RANGES.target : CONTROL_RANGES.duty;
}

/** POST /api/control: `{target1?, target2?, duty1?, duty2?, rpm?}`, at least one, numbers within range. */
export function validateControl(body: unknown, size: number, maxBytes: number): Checked<ControlSet> {
  if (size > maxBytes) return refuse(413, { error: 'too-large', limit: maxBytes });
  if (!plainObject(body)) return refuse(400, { error: 'not-object', allowed: `{${CONTROL_FIELDS.join(', ')}}` });
  const keys = Object.keys(body);
  if (keys.length === 0) return refuse(400, { error: 'empty', allowed: CONTROL_FIELDS });
  const out: ControlSet = {};
  for (const k of keys) {
    if (!(CONTROL_FIELDS as readonly string[]).includes(k)) return refuse(400, { error: 'unknown-field', field: k, allowed: CONTROL_FIELDS });
    const field = k as ControlField;
    const r = rangeOf(field);
    const v = body[k];
    const allowed = { min: r.min, max: r.max, unit: r.unit };
    if (typeof v !== 'number' || !Number.isFinite(v)) return refuse(400, { error: 'not-number', field, allowed, got: v });
    if (v < r.min || v > r.max) return refuse(400, { error: 'out-of-range', field, allowed, got: v });
    out[field] = v;
  }
  return { ok: true, value: out };
}

/** POST /api/gpio: `{pin, value}`, a writable pin and a boolean (or 0/1). */
export function validateGpio(body: unknown, size: number, maxBytes: number): Checked<{ pin: GpioPin; value: boolean }> {
  if (size > maxBytes) return refuse(413, { error: 'too-large', limit: maxBytes });
  if (!plainObject(body)) return refuse(400, { error: 'not-object', allowed: '{pin, value}' });
  for (const k of Object.keys(body)) if (k !== 'pin' && k !== 'value') return refuse(400, { error: 'unknown-field', field: k, allowed: ['pin', 'value'] });
  const pin = body.pin;
  if (typeof pin !== 'string' || !(GPIO_WRITABLE as readonly string[]).includes(pin)) return refuse(400, { error: 'out-of-range', field: 'pin', allowed: GPIO_WRITABLE, got: pin ?? null });
  const v = body.value;
  if (v !== true && v !== false && v !== 0 && v !== 1) return refuse(400, { error: 'not-boolean', field: 'value', allowed: [true, false, 0, 1], got: v ?? null });
  return { ok: true, value: { pin: pin as GpioPin, value: v === true || v === 1 } };
}

/** Which API operation a message asks for: msg.topic, else the request's method and path. */
export type Op = 'status' | 'data' | 'control' | 'log-start' | 'log-stop' | 'gpio-get' | 'gpio-set';

export function opOf(topic: unknown, method: string | undefined, path: string | undefined): Op | null {
  const t = typeof topic === 'string' ? topic : '';
  const m = (method ?? '').toUpperCase();
  const key = t || (path ?? '').replace(/\/+$/, '').split('/').slice(-2).join('/');
  const last = key.split('/').pop() ?? '';
  if (key === 'log/start' || key === 'log-start') return 'log-start';
  if (key === 'log/stop' || key === 'log-stop') return 'log-stop';
  if (last === 'status') return 'status';
  if (last === 'data') return 'data';
  if (last === 'control') return 'control';
  // POST /…/gpio writes, GET reads; without a request, topic `gpio` is a write (a dashboard button).
  if (last === 'gpio') return m === 'POST' || (m === '' && t === 'gpio') ? 'gpio-set' : 'gpio-get';
  if (t === 'gpio-get') return 'gpio-get';
  if (t === 'gpio-set') return 'gpio-set';
  return null;
}

// ---------------------------------------------------------------- replies

export interface LoggingState {
  on: boolean;
  /** Epoch ms of the last start (null: never started). */
  since: number | null;
  records: number;
}

export function dataBody(s: PlantSnapshot, now: number): Record<string, unknown> {
  return {
    ts: s.ts,
    age_ms: Math.max(0, now - s.ts),
    heaters: s.temps.map((t, i) => ({ temp_c: t, duty_pct: s.duties[i], target_c: s.targets[i], duty_set_pct: s.dutySets[i] })),
    motor: { rpm: s.rpm, rpm_set: s.rpmSet },
    last_write_ts: s.writeTs || null,
  };
}

export function statusBody(s: PlantSnapshot, logging: LoggingState, now: number): Record<string, unknown> {
  const fault = s.safety.overspeed || s.safety.overTemp.some(Boolean);
  return {
    state: fault ? 'fault' : 'running',
    ts: s.ts,
    uptime_s: Math.round((now - s.started) / 100) / 10,
    safety: { over_temp: s.safety.overTemp, overspeed: s.safety.overspeed, trips: s.safety.trips },
    logging: { on: logging.on, since: logging.since, records: logging.records },
    writes: s.writes,
    ticks: s.ticks,
  };
}

/** One telemetry line for the log (JSONL through rt-journey-egress). */
export function logRecord(s: PlantSnapshot): Record<string, unknown> {
  return { ts: s.ts, temps_c: s.temps, duties_pct: s.duties, targets_c: s.targets, rpm: s.rpm, rpm_set: s.rpmSet, over_temp: s.safety.overTemp, overspeed: s.safety.overspeed };
}
