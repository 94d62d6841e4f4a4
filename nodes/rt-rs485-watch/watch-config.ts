// Config of rt-rs485-watch: versioned, migrated, validated. Pure.
import { type Coded, coded } from '../shared/coded';
import { clampInt, type Migration, migrate, oneOf } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';
import { FN_READ_DISCRETE_INPUTS, FN_READ_HOLDING_REGISTERS, type ReadFunction } from './modbus-core';
import { compileMapping, type FrameEncoding, type FrameMapping, type FramerOptions, type FramingMode, unescapeBytes } from './passive-core';

export interface WatchDef extends NodeDef {
  version?: number;
  port?: string;
  mode?: string;
  key?: string;
  // polling
  unit?: number | string;
  fn?: number | string;
  address?: number | string;
  interval?: number | string;
  timeout?: number | string;
  openValue?: number | string;
  closedValue?: number | string;
  stall?: number | string;
  // passive
  framing?: string;
  delimiter?: string;
  gap?: number | string;
  encoding?: string;
  openMatch?: string;
  closedMatch?: string;
  silence?: number | string;
}

export type WatchMode = 'poll' | 'passive';

export interface WatchConfig {
  mode: WatchMode;
  /** flow context key of the door value */
  key: string;
  unit: number;
  fn: ReadFunction;
  address: number;
  intervalMs: number;
  timeoutMs: number;
  openValue: number;
  closedValue: number;
  stallMs: number;
  framer: FramerOptions;
  mapping: FrameMapping | null;
  silenceMs: number;
  /** Problems found in the config (empty when valid), as codes of WATCH_PROBLEMS. */
  problems: Coded[];
}

/** Codes of config problems (catalog rt-rs485-watch.codes.<code>). */
export const WATCH_PROBLEMS = ['bad-fn', 'bad-unit', 'discrete-open-value', 'same-values', 'empty-delimiter', 'bad-pattern'] as const;
const problem = (code: (typeof WATCH_PROBLEMS)[number], params?: Coded['params']): Coded => coded(code, params);

/** A read attempt (response timeout) and the stall cap never exceed this. */
export const STALL_CAP_MS = 500;

const MIGRATIONS: ReadonlyArray<Migration<WatchDef>> = [
  {
    version: 1,
    up: (d) => ({
      mode: 'poll',
      key: 'door',
      unit: 1,
      fn: 2,
      address: 0,
      interval: 100,
      timeout: 100,
      openValue: 1,
      closedValue: 0,
      stall: STALL_CAP_MS,
      framing: 'delimiter',
      delimiter: '\\n',
      gap: 10,
      encoding: 'text',
      openMatch: '^(OPEN|1)$',
      closedMatch: '^(CLOSED|0)$',
      silence: 0,
      ...d,
    }),
  },
];

export function readWatchConfig(raw: WatchDef): WatchConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const mode = oneOf(d.mode, ['poll', 'passive'] as const, 'poll');
  const key = typeof d.key === 'string' && d.key.trim() ? d.key.trim() : 'door';
  const fnNum = clampInt(d.fn, 0, 255, 2);
  const fn: ReadFunction = fnNum === 3 ? FN_READ_HOLDING_REGISTERS : FN_READ_DISCRETE_INPUTS;
  if (fnNum !== 2 && fnNum !== 3) problems.push(problem('bad-fn'));
  const unit = clampInt(d.unit, 0, 255, 1);
  if (unit < 1 || unit > 247) problems.push(problem('bad-unit'));
  const stallMs = clampInt(d.stall, 20, STALL_CAP_MS, STALL_CAP_MS);
  const timeoutMs = Math.min(stallMs, clampInt(d.timeout, 5, STALL_CAP_MS, 100));
  const openValue = clampInt(d.openValue, 0, 0xffff, 1);
  let closedValue = clampInt(d.closedValue, 0, 0xffff, 0);
  if (fn === FN_READ_DISCRETE_INPUTS) {
    if (openValue > 1) problems.push(problem('discrete-open-value'));
    closedValue = openValue === 1 ? 0 : 1;
  } else if (openValue === closedValue) problems.push(problem('same-values'));
  const framing: FramingMode = oneOf(d.framing, ['delimiter', 'timeout'] as const, 'delimiter');
  const delimiter = unescapeBytes(typeof d.delimiter === 'string' ? d.delimiter : '\\n');
  if (mode === 'passive' && framing === 'delimiter' && delimiter.length === 0) problems.push(problem('empty-delimiter'));
  const encoding: FrameEncoding = oneOf(d.encoding, ['text', 'hex'] as const, 'text');
  let mapping: FrameMapping | null = null;
  try {
    mapping = compileMapping(encoding, typeof d.openMatch === 'string' ? d.openMatch : '^(OPEN|1)$', typeof d.closedMatch === 'string' ? d.closedMatch : '^(CLOSED|0)$');
  } catch (e) {
    if (mode === 'passive') problems.push(problem('bad-pattern', { error: (e as Error).message }));
  }
  return {
    mode,
    key,
    unit,
    fn,
    address: clampInt(d.address, 0, 0xffff, 0),
    intervalMs: clampInt(d.interval, 5, 3_600_000, 100),
    timeoutMs,
    openValue,
    closedValue,
    stallMs,
    framer: { mode: framing, delimiter: delimiter.length ? delimiter : Buffer.from('\n'), gapMs: clampInt(d.gap, 1, 10_000, 10), maxLength: 256 },
    mapping,
    silenceMs: clampInt(d.silence, 0, 3_600_000, 0),
    problems,
  };
}
