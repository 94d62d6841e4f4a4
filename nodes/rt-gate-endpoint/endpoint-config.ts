// Config of rt-gate-endpoint: versioned, migrated, validated. Pure.
import { type Coded, coded } from '../shared/coded';
import { LIMITS, limitProblem, readLimited } from '../shared/limits';
import { bool, type Migration, migrate } from '../shared/migrate';
import type { Node, NodeDef } from '../shared/red-types';
import { compileAck, templateFields, unescapeTemplate } from '../rt-gate-command/gate-core';

export interface EndpointDef extends NodeDef {
  version?: number;
  host?: string;
  port?: number | string;
  template?: string;
  ack?: string;
  timeout?: number | string;
  inflight?: number | string;
  backoffMin?: number | string;
  backoffMax?: number | string;
  keepAlive?: boolean | string;
}

export interface EndpointConfig {
  host: string;
  port: number;
  template: string;
  ack: string;
  timeoutMs: number;
  maxInflight: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  keepAlive: boolean;
  /** Problems found in the config (empty when valid), as codes of ENDPOINT_PROBLEMS. */
  problems: Coded[];
}

/** Codes of config problems (catalog rt-gate-command.codes.<code>: the gate command node reports them); out-of-range* from shared/limits. */
export const ENDPOINT_PROBLEMS = ['host-empty', 'template-no-gate', 'bad-ack', 'out-of-range', 'out-of-range-whole'] as const;
const problem = (code: (typeof ENDPOINT_PROBLEMS)[number], params?: Coded['params']): Coded => coded(code, params);

const MIGRATIONS: ReadonlyArray<Migration<EndpointDef>> = [
  { version: 1, up: (d) => ({ template: 'OPEN {gate}\\r\\n', ack: '^OK', timeout: 5000, inflight: 8, backoffMin: 250, backoffMax: 10000, keepAlive: true, ...d }) },
];

export function readEndpoint(raw: EndpointDef): EndpointConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const host = typeof d.host === 'string' ? d.host.trim() : '';
  if (!host) problems.push(problem('host-empty'));
  const lim = (field: 'port' | 'timeout' | 'inflight' | 'backoffMin' | 'backoffMax', dflt: number): number => Math.round(readLimited('rt-gate-endpoint', field, d[field], dflt, problems));
  if (d.port === undefined || d.port === null || String(d.port).trim() === '') problems.push(limitProblem('port', LIMITS['rt-gate-endpoint'].port));
  const port = lim('port', 0);
  const template = unescapeTemplate(typeof d.template === 'string' ? d.template : 'OPEN {gate}\\r\\n');
  if (!templateFields(template).includes('gate') && !/gate/i.test(template)) problems.push(problem('template-no-gate'));
  const ack = typeof d.ack === 'string' ? d.ack : '';
  try {
    compileAck(ack);
  } catch (e) {
    problems.push(problem('bad-ack', { error: (e as Error).message }));
  }
  const backoffMinMs = lim('backoffMin', 250);
  return {
    host,
    port,
    template,
    ack,
    timeoutMs: lim('timeout', 5000),
    maxInflight: lim('inflight', 8),
    backoffMinMs,
    backoffMaxMs: Math.max(backoffMinMs, lim('backoffMax', 10_000)),
    keepAlive: bool(d.keepAlive, true),
    problems,
  };
}

export interface EndpointNode extends Node {
  config: EndpointConfig;
}

