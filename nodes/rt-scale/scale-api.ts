// What an rt-scale config node offers the nodes that use it (rt-hx711,
// rt-dosing): samples drained from the worker's ring, scale events, commands,
// and consumers attached to the sample stream inside the HAL worker.
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

/** A consumer module attached to this scale's sample stream in the HAL worker (scale-consumer.ts). */
export interface ConsumerOptions<Ev> {
  /** Absolute path of the compiled module exporting createConsumer(host, init). */
  module: string;
  /** Handed to createConsumer on every (re-)attach: the same object, so changes to it survive a worker restart. */
  init: unknown;
  onEvent(ev: Ev): void;
  /** The worker crashed (it restarts and the consumer is attached again: onReady) or the attach failed. Raw (coded) error. */
  onError(err: Error): void;
  onReady?(): void;
}

export interface ConsumerLink<Cmd> {
  /** Rejects with the raw (coded) error: the consumer's node words it from its own catalog. */
  request<T = unknown>(cmd: Cmd, timeoutMs?: number): Promise<T>;
  /** Detaches the consumer (its close() runs in the worker first). */
  close(timeoutMs?: number): Promise<void>;
}

export interface ScaleNode extends Node {
  readonly config: ScaleConfig;
  /** Registers a user; the first one starts the scale's worker instance. Returns the detach function (async: waits for the worker when it was the last user). */
  attach(user: ScaleUser): () => Promise<void>;
  request<T = unknown>(cmd: ScaleCmd, timeoutMs?: number): Promise<T>;
  /**
   * Attaches a consumer of the sample stream: its module runs in the scale's
   * worker with its own lease (its events reach only its node). Call it once
   * the scale is ready (a user's onNotice 'ready').
   */
  attachConsumer<Cmd, Ev>(o: ConsumerOptions<Ev>): ConsumerLink<Cmd>;
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
