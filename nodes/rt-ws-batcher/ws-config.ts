// rt-ws-batcher's config: read, clamped to nodes/shared/limits.ts, problems as
// codes. Pure: no Node-RED import.
import type { Coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { migrate, oneOf } from '../shared/migrate';
import { DEFAULT_HUB, type HubOptions } from './batcher-core';
import { parseOrigins } from './ws-serve';

export interface WsDef extends Record<string, unknown> {
  version?: number;
  path?: string;
  mode?: string;
  port?: number | string;
  host?: string;
  origins?: string;
  batchSize?: number | string;
  delayMs?: number | string;
  capKb?: number | string;
  graceS?: number | string;
  ringBatches?: number | string;
  deflateThreshold?: number | string;
  deflateConcurrency?: number | string;
  scale?: string;
  scaleTopic?: string;
  dashRate?: number | string;
  dashPoints?: number | string;
}

export interface WsConfig {
  mode: 'shared' | 'worker';
  /** The socket's path (under httpNodeRoot in shared mode), starting with '/'. */
  path: string;
  port: number;
  host: string;
  origins: string[];
  hub: HubOptions;
  deflate: { threshold: number; concurrency: number };
  scale: string;
  scaleTopic: string;
  /** Dashboard output: messages per second (0 = off) and points per message. */
  dashRate: number;
  dashPoints: number;
  problems: Coded[];
}

/**
 * Default compression threshold (bytes): frames above it are deflated. Chosen
 * by measurement (docs/benchmarks.md, ws-batcher): small JSON batches gain
 * little and cost main-thread CPU per client; big ones shrink 4-6x.
 */
export const DEFAULT_DEFLATE_THRESHOLD = 8192;
export const DEFAULT_DEFLATE_CONCURRENCY = 2;

const PATH_RE = /^\/[A-Za-z0-9._~\-/]*$/;

export const MIGRATIONS = [{ version: 1, up: (d: WsDef): WsDef => d }];

export function readWsConfig(raw: WsDef): WsConfig {
  const def = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const T = 'rt-ws-batcher' as const;
  let path = typeof def.path === 'string' && def.path.trim() !== '' ? def.path.trim() : '/ws/telemetry';
  if (!path.startsWith('/')) path = '/' + path;
  path = path.replace(/\/+$/, '') || '/';
  if (!PATH_RE.test(path) || path.includes('//') || path === '/') problems.push({ code: 'bad-path', params: { path } });
  const mode = oneOf(def.mode, ['shared', 'worker'] as const, 'shared');
  const port = Math.round(readLimited(T, 'port', def.port, 1881, problems));
  const hub: HubOptions = {
    batchSize: Math.round(readLimited(T, 'batchSize', def.batchSize, DEFAULT_HUB.batchSize, problems)),
    delayMs: readLimited(T, 'delayMs', def.delayMs, DEFAULT_HUB.delayMs, problems),
    capBytes: Math.round(readLimited(T, 'capKb', def.capKb, DEFAULT_HUB.capBytes / 1024, problems)) * 1024,
    graceMs: readLimited(T, 'graceS', def.graceS, DEFAULT_HUB.graceMs / 1000, problems) * 1000,
    ringBatches: Math.round(readLimited(T, 'ringBatches', def.ringBatches, DEFAULT_HUB.ringBatches, problems)),
    ringBytes: DEFAULT_HUB.ringBytes,
    maxTopics: DEFAULT_HUB.maxTopics,
  };
  return {
    mode,
    path,
    port,
    host: typeof def.host === 'string' ? def.host.trim() : '',
    origins: parseOrigins(def.origins),
    hub,
    deflate: {
      threshold: Math.round(readLimited(T, 'deflateThreshold', def.deflateThreshold, DEFAULT_DEFLATE_THRESHOLD, problems)),
      concurrency: Math.round(readLimited(T, 'deflateConcurrency', def.deflateConcurrency, DEFAULT_DEFLATE_CONCURRENCY, problems)),
    },
    scale: typeof def.scale === 'string' ? def.scale : '',
    scaleTopic: typeof def.scaleTopic === 'string' && def.scaleTopic.trim() !== '' ? def.scaleTopic.trim() : 'weight',
    dashRate: readLimited(T, 'dashRate', def.dashRate, 0, problems),
    dashPoints: Math.round(readLimited(T, 'dashPoints', def.dashPoints, 500, problems)),
    problems,
  };
}
