// Commands and events between rt-journey-egress and its worker.
import type { MetricSpec } from '../shared/shared-metrics';
import type { WireError } from '../shared/protocol';
import type { MqttSettings } from '../rt-mqtt-ingress/ingress-protocol';

export const EGRESS_METRICS: MetricSpec = {
  counters: ['lines', 'batches', 'bytes', 'write_errors', 'torn_tails', 'mqtt_published', 'mqtt_acked', 'mqtt_dropped'],
  gauges: ['mqtt_connected', 'mqtt_outbox'],
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
  /** Also publish each written batch to MQTT through an on-disk outbox (null: file only). */
  mqtt?: { settings: MqttSettings; topic: string; file: string; limit: number } | null;
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
  | { t: 'mqtt'; state: 'connected' | 'down'; error?: string }
  | { t: 'fatal'; error: WireError };
