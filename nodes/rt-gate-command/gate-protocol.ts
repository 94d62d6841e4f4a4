// Commands and events between rt-gate-command and its worker.
import type { Coded } from '../shared/coded';
import type { MetricSpec } from '../shared/shared-metrics';

export const GATE_METRICS: MetricSpec = {
  counters: ['ok', 'timeout', 'error', 'sent', 'connects'],
  gauges: ['connected'],
  histograms: ['queue_delay', 'send_latency'],
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
};

export interface GateInit {
  host: string;
  port: number;
  /** Acknowledgement pattern source ('' = none: a command is done when written). */
  ack: string;
  timeoutMs: number;
  /** Commands sent ahead without waiting for the previous acknowledgement (replies come in order). */
  maxInflight: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  keepAlive: boolean;
  /** Niceness the gate worker thread asks for (-20..0; 0 = leave it). */
  nice: number;
  metrics: SharedArrayBuffer;
  closeGraceMs: number;
}

export type GateCmd = { t: 'send'; id: number; gate: string; text: string; enqUs: number };

export type GateEvent =
  | { t: 'result'; id: number; result: 'ok' | 'timeout' | 'error'; reason?: Coded; reply?: string; queueDelayUs: number; sendLatencyUs: number; totalUs: number }
  | { t: 'link'; state: 'connecting' | 'connected' | 'down'; error?: Coded }
  | { t: 'priority'; nice: number };
