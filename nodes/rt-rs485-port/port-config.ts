// Config of rt-rs485-port: versioned, migrated, validated. Pure.
import { type Coded, coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { type Migration, migrate, oneOf } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';

export interface PortDef extends NodeDef {
  version?: number;
  path?: string;
  baudRate?: number | string;
  dataBits?: number | string;
  parity?: string;
  stopBits?: number | string;
  turnaround?: number | string;
  queueLimit?: number | string;
  backoffMin?: number | string;
  backoffMax?: number | string;
}

export type Parity = 'none' | 'even' | 'odd' | 'mark' | 'space';
export const PARITIES: readonly Parity[] = ['none', 'even', 'odd', 'mark', 'space'];
export const BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600] as const;

export interface PortConfig {
  path: string;
  baudRate: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: Parity;
  stopBits: 1 | 1.5 | 2;
  /** quiet time (ms) between the end of one request/response and the next request */
  turnaroundMs: number;
  /** requests waiting for the bus, beyond which the newest is refused */
  queueLimit: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Problems found in the config (empty when valid), as codes of PORT_PROBLEMS. */
  problems: Coded[];
}

/** Codes of config problems (catalog rt-rs485-port.codes.<code>); out-of-range* from shared/limits. */
export const PORT_PROBLEMS = ['path-empty', 'out-of-range', 'out-of-range-whole'] as const;

const MIGRATIONS: ReadonlyArray<Migration<PortDef>> = [
  { version: 1, up: (d) => ({ baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1, turnaround: 0, queueLimit: 16, backoffMin: 250, backoffMax: 5000, ...d }) },
];

export function readPortConfig(raw: PortDef): PortConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const path = typeof d.path === 'string' ? d.path.trim() : '';
  if (!path) problems.push(coded('path-empty' satisfies (typeof PORT_PROBLEMS)[number]));
  const lim = (field: 'baudRate' | 'dataBits' | 'turnaround' | 'queueLimit' | 'backoffMin' | 'backoffMax', dflt: number): number => Math.round(readLimited('rt-rs485-port', field, d[field], dflt, problems));
  const baudRate = lim('baudRate', 9600);
  const dataBits = lim('dataBits', 8) as 5 | 6 | 7 | 8;
  const sb = Number(d.stopBits);
  const stopBits: 1 | 1.5 | 2 = sb === 2 ? 2 : sb === 1.5 ? 1.5 : 1;
  const backoffMinMs = lim('backoffMin', 250);
  return {
    path,
    baudRate,
    dataBits,
    parity: oneOf(d.parity, PARITIES, 'none'),
    stopBits,
    turnaroundMs: lim('turnaround', 0),
    queueLimit: lim('queueLimit', 16),
    backoffMinMs,
    backoffMaxMs: Math.max(backoffMinMs, lim('backoffMax', 5000)),
    problems,
  };
}

/** Time on the wire for n bytes (start + data + parity + stop bits), in ms. */
export function wireMs(n: number, c: Pick<PortConfig, 'baudRate' | 'dataBits' | 'parity' | 'stopBits'>): number {
  const bits = 1 + c.dataBits + (c.parity === 'none' ? 0 : 1) + c.stopBits;
  return (n * bits * 1000) / c.baudRate;
}
