// Commands and events between rt-journey-egress and its worker.
import type { MetricSpec } from '../shared/shared-metrics';
import type { WireError } from '../shared/protocol';

export const EGRESS_METRICS: MetricSpec = {
  counters: ['lines', 'batches', 'bytes', 'write_errors', 'torn_tails'],
  histograms: ['flush'],
};

export interface EgressInit {
  pattern: string;
  count: number;
  intervalMs: number;
  fsync: 'none' | 'batch';
  utc: boolean;
  createDir: boolean;
  retryInitialMs: number;
  retryMaxMs: number;
  closeTimeoutMs: number;
  metrics: SharedArrayBuffer;
  testHooks: boolean;
}

export type EgressCmd =
  | { t: 'append'; seq0: number; lines: string[]; ts: number[] }
  | { t: 'flush' }
  /** The node is closing: write every batch as soon as it arrives (no count/timer wait). */
  | { t: 'drain' }
  | { t: 'crash' };

export type EgressEvent =
  | { t: 'flushed'; upTo: number; lines: number; bytes: number; file: string; latencyUs: number }
  | { t: 'error'; error: WireError; file: string; pending: number; retryInMs: number }
  | { t: 'recovered'; file: string }
  /** A torn last line (no trailing newline) was set apart before appending; see TornReport. */
  | { t: 'torn'; file: string; bytes: number; offset: number; to: string; how: 'moved' | 'ended' }
  | { t: 'lost'; count: number; firstSeq: number }
  | { t: 'fatal'; error: WireError };
