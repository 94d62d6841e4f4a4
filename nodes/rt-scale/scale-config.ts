// Config of rt-scale: versioned, migrated, validated. Pure.
import { type Coded, coded } from '../shared/coded';
import { LIMITS, limitOk, readLimited } from '../shared/limits';
import { bool, type Migration, migrate, oneOf } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';
import type { Gain } from './hx711-protocol';
import type { Calibration, SamplerOptions } from './sampler-core';

export interface ScaleDef extends NodeDef {
  version?: number;
  backend?: string;
  doutPin?: number | string;
  sckPin?: number | string;
  gain?: string;
  rate?: number | string;
  zero?: number | string;
  countsPerGram?: number | string;
  motorPin?: number | string;
  motorHz?: number | string;
  median?: boolean | string;
  average?: number | string;
  stableG?: number | string;
  faultRun?: number | string;
  capacityG?: number | string;
  heartbeatPin?: number | string;
  gpioChip?: string;
  doutBias?: string;
  pwmChip?: number | string;
  pwmChannel?: number | string;
}

export interface ScaleConfig {
  backend: 'simulated' | 'pigpio' | 'gpiocdev';
  doutPin: number;
  sckPin: number;
  gain: Gain;
  sps: 10 | 80;
  cal: Calibration;
  motorPin: number;
  motorHz: number;
  sampler: Partial<SamplerOptions>;
  capacityCg: number;
  /** pigpio backend: the heartbeat pin for the motor driver's hardware watchdog, -1 = none. */
  heartbeatPin: number;
  /** gpiocdev backend: the GPIO chip ('' = the header's chip, found by its label). */
  gpioChip: string;
  /** gpiocdev backend: DOUT's bias. */
  doutBias: 'as-is' | 'disabled' | 'pull-up' | 'pull-down';
  /** gpiocdev backend: the kernel PWM chip's number as a string ('' = found by its device). */
  pwmChip: string;
  /** gpiocdev backend: the PWM channel, -1 = the motor GPIO's channel on this board. */
  pwmChannel: number;
  /** Problems found in the config (empty when valid), as codes of SCALE_PROBLEMS. */
  problems: Coded[];
}

/** Codes of config problems (catalog rt-scale.codes.<code>). */
export const SCALE_PROBLEMS = ['bad-backend', 'bad-dout-pin', 'bad-sck-pin', 'bad-motor-pin', 'bad-heartbeat-pin', 'same-pins', 'bad-rate', 'bad-zero', 'bad-cpg', 'bad-stable', 'bad-capacity', 'out-of-range', 'out-of-range-whole', 'bad-gpio-chip'] as const;
type Problem = (typeof SCALE_PROBLEMS)[number];
const problem = (code: Problem, params?: Coded['params']): Coded => coded(code, params);

const MIGRATIONS: ReadonlyArray<Migration<ScaleDef>> = [
  {
    version: 1,
    up: (d) => ({ backend: 'simulated', doutPin: 5, sckPin: 6, gain: 'A128', rate: 80, zero: 84000, countsPerGram: 420, motorPin: 18, motorHz: 10000, median: true, average: 4, stableG: 0.05, faultRun: 3, capacityG: 5000, ...d }),
  },
];

function num(v: unknown): number {
  return typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
}

export function readScale(raw: ScaleDef): ScaleConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const backend = oneOf(d.backend, ['simulated', 'pigpio', 'gpiocdev'] as const, 'simulated');
  if (d.backend !== undefined && d.backend !== backend) problems.push(problem('bad-backend', { backend: String(d.backend) }));
  const L = LIMITS['rt-scale'];
  const pin = (v: unknown, bad: Problem): number => {
    const n = num(v);
    if (!Number.isFinite(n) || !limitOk(n, L.doutPin)) {
      problems.push(problem(bad));
      return 0;
    }
    return n;
  };
  const doutPin = pin(d.doutPin, 'bad-dout-pin');
  const sckPin = pin(d.sckPin, 'bad-sck-pin');
  const motorPin = pin(d.motorPin, 'bad-motor-pin');
  if (new Set([doutPin, sckPin, motorPin]).size < 3) problems.push(problem('same-pins'));
  // optional: absent or empty = none (configs from before it existed need no migration)
  let heartbeatPin = -1;
  if (d.heartbeatPin !== undefined && String(d.heartbeatPin).trim() !== '') {
    const n = num(d.heartbeatPin);
    if (!Number.isInteger(n) || !limitOk(n, L.doutPin) || [doutPin, sckPin, motorPin].includes(n)) problems.push(problem('bad-heartbeat-pin'));
    else heartbeatPin = n;
  }
  // gpiocdev: optional, absent or empty = found at start (configs from before it existed need no migration)
  const gpioChip = typeof d.gpioChip === 'string' ? d.gpioChip.trim() : '';
  if (gpioChip !== '' && !/^\/dev\/[\w.-]+$/.test(gpioChip)) problems.push(problem('bad-gpio-chip', { chip: gpioChip }));
  const doutBias = oneOf(d.doutBias, ['disabled', 'as-is', 'pull-up', 'pull-down'] as const, 'disabled');
  const opt = (v: unknown, key: 'pwmChip' | 'pwmChannel'): number => {
    if (v === undefined || v === null || String(v).trim() === '') return -1;
    return readLimited('rt-scale', key, v, -1, problems);
  };
  const pwmChipN = opt(d.pwmChip, 'pwmChip');
  const pwmChannel = opt(d.pwmChannel, 'pwmChannel');
  const rate = num(d.rate);
  if (rate !== 10 && rate !== 80) problems.push(problem('bad-rate'));
  const zero = num(d.zero);
  if (!Number.isFinite(zero) || !limitOk(zero, L.zero)) problems.push(problem('bad-zero'));
  const cpg = num(d.countsPerGram);
  if (!Number.isFinite(cpg) || Math.abs(cpg) < 0.001) problems.push(problem('bad-cpg'));
  const stableG = num(d.stableG);
  if (!Number.isFinite(stableG) || !limitOk(stableG, L.stableG)) problems.push(problem('bad-stable'));
  const capacityG = num(d.capacityG);
  if (!Number.isFinite(capacityG) || !limitOk(capacityG, L.capacityG)) problems.push(problem('bad-capacity'));
  const motorHz = readLimited('rt-scale', 'motorHz', d.motorHz, 10_000, problems);
  const average = readLimited('rt-scale', 'average', d.average, 4, problems);
  const faultRun = readLimited('rt-scale', 'faultRun', d.faultRun, 3, problems);
  const gain = oneOf(d.gain, ['A128', 'B32', 'A64'] as const, 'A128');
  return {
    backend,
    doutPin,
    sckPin,
    gain,
    sps: rate === 10 ? 10 : 80,
    cal: { zero: Number.isInteger(zero) ? zero : 0, cpgMilli: Number.isFinite(cpg) && cpg !== 0 ? Math.round(cpg * 1000) : 1000 },
    motorPin,
    motorHz,
    sampler: {
      median: bool(d.median, true),
      average,
      stableCg: Math.max(1, Math.round((stableG > 0 ? stableG : 0.05) * 100)),
      faultRun,
      stableWindow: rate === 10 ? 5 : 40,
      noiseWindow: rate === 10 ? 20 : 80,
    },
    capacityCg: Math.round((capacityG > 0 ? capacityG : 5000) * 100),
    heartbeatPin,
    gpioChip,
    doutBias,
    pwmChip: pwmChipN >= 0 ? String(pwmChipN) : '',
    pwmChannel,
    problems,
  };
}
