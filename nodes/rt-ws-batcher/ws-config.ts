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
  replies?: string;
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
  /** session: a message with msg._session.id goes to that client only (as core websocket out); broadcast: every message to every client. */
  replies: 'session' | 'broadcast';
  problems: Coded[];
}

/**
 * Default compression threshold (bytes): frames above it are deflated. Chosen
 * by measurement (docs/benchmarks.md, ws-batcher): ws compresses each frame
 * once per client, so with 8 KiB, 50 clients at 10k msgs/s cut the bytes per
 * message 7x but pushed delivery p99 to seconds (the deflate queue counted
 * against each client's cap, which then got coalesced batches); off, p99 was
 * 0.56 s with nothing lost. 64 KiB leaves batches of small messages alone and
 * compresses only big frames (large payloads, snapshots of many topics).
 */
export const DEFAULT_DEFLATE_THRESHOLD = 65536;
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
    replies: oneOf(def.replies, ['session', 'broadcast'] as const, 'session'),
    problems,
  };
}
