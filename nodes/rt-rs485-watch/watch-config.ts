// Config of rt-rs485-watch: versioned, migrated, validated. Pure.
import { type Coded, coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
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

/** Codes of config problems (catalog rt-rs485-watch.codes.<code>); out-of-range* from shared/limits. */
export const WATCH_PROBLEMS = ['bad-fn', 'discrete-open-value', 'same-values', 'empty-delimiter', 'bad-pattern', 'out-of-range', 'out-of-range-whole'] as const;
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
  type Field = 'unit' | 'address' | 'interval' | 'timeout' | 'stall' | 'openValue' | 'closedValue' | 'gap' | 'silence';
  const lim = (field: Field, dflt: number): number => Math.round(readLimited('rt-rs485-watch', field, d[field], dflt, problems));
  const unit = lim('unit', 1);
  const stallMs = lim('stall', STALL_CAP_MS);
  const timeoutMs = Math.min(stallMs, lim('timeout', 100));
  const openValue = lim('openValue', 1);
  let closedValue = lim('closedValue', 0);
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
    address: lim('address', 0),
    intervalMs: lim('interval', 100),
    timeoutMs,
    openValue,
    closedValue,
    stallMs,
    framer: { mode: framing, delimiter: delimiter.length ? delimiter : Buffer.from('\n'), gapMs: lim('gap', 10), maxLength: 256 },
    mapping,
    silenceMs: lim('silence', 0),
    problems,
  };
}
