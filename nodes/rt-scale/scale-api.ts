// What an rt-scale config node offers the nodes that use it (rt-hx711,
// rt-dosing): samples drained from the worker's ring, scale events, commands.
import type { Node } from '../shared/red-types';
import type { SharedMetrics } from '../shared/shared-metrics';
import type { CalibrationStore } from './calibration-store';
import type { Calibration } from './sampler-core';
import type { ScaleConfig } from './scale-config';
import type { ScaleCmd, ScaleEvent } from './scale-protocol';

export interface DecodedSample {
  seq: number;
  /** Data-ready edge, us on process.hrtime's time base. */
  tUs: number;
  /** Epoch milliseconds of the edge. */
  ts: number;
  raw: number;
  filtered: number;
  cg: number;
  flags: number;
  /** Data-ready to ring, us. */
  latUs: number;
}

export type ScaleNotice = ScaleEvent | { t: 'ready' } | { t: 'error'; message: string };

export interface ScaleUser {
  onSamples?(batch: readonly DecodedSample[]): void;
  onNotice?(n: ScaleNotice): void;
}

export interface ScaleNode extends Node {
  readonly config: ScaleConfig;
  /** Registers a user; the first one starts the scale's worker instance. Returns the detach function (async: waits for the worker when it was the last user). */
  attach(user: ScaleUser): () => Promise<void>;
  request<T = unknown>(cmd: ScaleCmd, timeoutMs?: number): Promise<T>;
  readonly ready: boolean;
  /** The last start error (e.g. pigpio missing), or null. */
  readonly startError: string | null;
  calibration(): Calibration;
  /** The newest sample drained, or null. */
  latest(): DecodedSample | null;
  /** The worker-side metrics of the running instance (null when not running). */
  sharedMetrics(): SharedMetrics | null;
  /** Where learned state is kept (the user dir). */
  readonly store: CalibrationStore;
}
