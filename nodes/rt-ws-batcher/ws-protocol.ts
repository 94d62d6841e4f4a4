// Commands and events between rt-ws-batcher (flow engine) and its worker
// (worker mode), and the sample ring a scale's consumer fills for it.
import type { Coded } from '../shared/coded';
import type { HubOptions } from './batcher-core';
import type { ChartPoint } from './dash-core';
import type { DeflateOptions } from './ws-serve';

export interface WsWorkerInit {
  host: string;
  port: number;
  path: string;
  origins: string[];
  hub: HubOptions;
  deflate: DeflateOptions;
  metrics: SharedArrayBuffer;
  batchMetrics: SharedArrayBuffer;
  clientDir: string;
  /** The direct source: a scale's samples (ring filled in the HAL worker), drained here. */
  samples?: { ring: SharedArrayBuffer; topic: string };
  /** Dashboard mode: points posted back at this rate (per second), at most dashPoints each. */
  dashRate: number;
  dashPoints: number;
  /** Niceness the worker thread asks for (-20..0; 0 leaves it alone): setting rtEdgeWsNice. */
  nice: number;
}

/** Messages handed over from the flow engine, in columns (one postMessage per hand-off). */
export interface ItemsCmd {
  t: 'items';
  topic: string[];
  json: string[];
  num: number[];
  ts: number[];
  enqUs: number[];
  /** The client id a message is addressed to ('' = every client). */
  to: string[];
}

export type WsCmd = ItemsCmd;

export type WsEvent =
  | { t: 'listening'; port: number }
  | { t: 'clients'; n: number }
  | { t: 'failed'; error: Coded | string }
  | { t: 'chart'; points: ChartPoint[] }
  /** nice: the niceness in effect, null when the asked one could not be applied (no root / CAP_SYS_NICE). */
  | { t: 'priority'; nice: number | null; asked: number };

/** Sample ring records (Int32 words): epoch us high/low, centigrams, sample seq. */
export const SAMPLE_REC_WORDS = 4;
export const SAMPLE_RING_CAPACITY = 1024;

export interface SampleConsumerInit {
  ring: SharedArrayBuffer;
}
