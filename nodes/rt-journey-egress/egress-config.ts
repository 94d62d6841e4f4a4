// Config of rt-journey-egress: versioned, migrated, copied and checked against
// the shared limits (nodes/shared/limits.ts, the editor's rule set too).
// Pure: no Node-RED import.
import { isAbsolute, resolve } from 'node:path';

import type { Coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { bool, type Migration, migrate, oneOf } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';
import { checkPattern } from './egress-core';

export interface EgressDef extends NodeDef {
  version?: number;
  path?: string;
  flushCount?: number | string;
  flushMs?: number | string;
  fsync?: string;
  queueLimit?: number | string;
  utc?: boolean | string;
  createDir?: boolean | string;
  report?: boolean | string;
  /** rt-mqtt-broker config id: also publish each batch there (empty: file only). */
  mqttBroker?: string;
  mqttTopic?: string;
  outboxLimit?: number | string;
}

export const MIGRATIONS: ReadonlyArray<Migration<EgressDef>> = [
  // v1: first release. Configs saved before `version` existed get the v1 defaults.
  {
    version: 1,
    up: (d) => ({ fsync: 'batch', queueLimit: 10000, utc: false, createDir: true, report: false, ...d }),
  },
];

export interface EgressConfig {
  pattern: string;
  flushCount: number;
  flushMs: number;
  fsync: 'none' | 'batch';
  queueLimit: number;
  utc: boolean;
  createDir: boolean;
  report: boolean;
  /** The MQTT outbox: broker config id ('' = off), topic, bound in batches. */
  mqttBroker: string;
  mqttTopic: string;
  outboxLimit: number;
  /** Why the path pattern is unusable (a PATH_PROBLEMS code), or null. */
  patternError: Coded | null;
  /** Numeric fields outside their limits (the node then refuses to start, as the editor flags them). */
  problems: Coded[];
}

/** Copies and checks the editor config; never throws. */
export function readConfig(raw: EgressDef, baseDir: string): EgressConfig {
  const d = migrate(raw, MIGRATIONS);
  const p = typeof d.path === 'string' ? d.path.trim() : '';
  const patternError = checkPattern(p);
  const problems: Coded[] = [];
  return {
    pattern: patternError ? '' : isAbsolute(p) ? p : resolve(baseDir, p),
    flushCount: readLimited('rt-journey-egress', 'flushCount', d.flushCount, 10, problems),
    flushMs: readLimited('rt-journey-egress', 'flushMs', d.flushMs, 1000, problems),
    fsync: oneOf(d.fsync, ['none', 'batch'] as const, 'batch'),
    queueLimit: readLimited('rt-journey-egress', 'queueLimit', d.queueLimit, 10000, problems),
    utc: bool(d.utc, false),
    createDir: bool(d.createDir, true),
    report: bool(d.report, false),
    mqttBroker: typeof d.mqttBroker === 'string' ? d.mqttBroker.trim() : '',
    mqttTopic: typeof d.mqttTopic === 'string' && d.mqttTopic.trim() && !/[+#]/.test(d.mqttTopic) ? d.mqttTopic.trim() : 'store/journeys',
    outboxLimit: readLimited('rt-journey-egress', 'outboxLimit', d.outboxLimit, 100_000, problems),
    patternError,
    problems,
  };
}

