// Commands and events between rt-mqtt-ingress / rt-mqtt-broker and their
// worker (mqtt.worker.ts). No Node-RED, no threads.
import type { Coded } from '../shared/coded';
import type { MetricSpec } from '../shared/shared-metrics';
import type { ParserName } from './ingress-core';

/** How the worker's MQTT client connects (from an rt-mqtt-broker config). */
export interface MqttSettings {
  url: string;
  clientId: string;
  clean: boolean;
  keepaliveS: number;
  protocolVersion: 4 | 5;
  username?: string;
  password?: string;
  /** PEM file paths, read in the worker at each connect. */
  ca?: string;
  cert?: string;
  key?: string;
  verify: boolean;
  backoffMinMs: number;
  backoffMaxMs: number;
}

export interface SourceSpec {
  /** The metrics label and msg.source. */
  name: string;
  parser: ParserName;
  /**
   * Frames (parser tracks) only: the least time between two frames of one sensor handed to the flow, in ms
   * (1000 / Frame rate); the frames in between are merged into the next (FrameMerge). 0: every frame.
   */
  frameGapMs?: number;
}

export interface SubSpec {
  topic: string;
  qos: 0 | 1 | 2;
  /** Index into sources. */
  source: number;
}

export interface TcpSpec {
  host: string;
  port: number;
  /** Index into sources; msg.topic is `tcp:<name>`. */
  source: number;
  name: string;
}

export interface ClientInit {
  role: 'client';
  /** null: no MQTT (a TCP-only ingress). */
  mqtt: MqttSettings | null;
  sources: SourceSpec[];
  subs: SubSpec[];
  tcp: TcpSpec | null;
  /** CreditGate words (posted, consumed), one pair per source. */
  ctl: SharedArrayBuffer;
  /** Events posted and not yet processed by the flow side, at most, per source (sourceLimits). */
  limits: number[];
  /** Largest payload / line accepted (bytes of text). */
  maxBytes: number;
  metrics: SharedArrayBuffer;
}

export interface BrokerInit {
  role: 'broker';
  host: string;
  port: number;
}

export type MqttInit = ClientInit | BrokerInit;

export type IngressCmd = { t: 'noop' };

/** One event for the flow: source index, topic, parsed payload, ingress seq, worker receive time (epoch ms, fractional). */
export interface WireEvent {
  s: number;
  topic: string;
  p: Record<string, unknown>;
  q: number;
  rx: number;
}

export type IngressEvent =
  | { t: 'batch'; ev: WireEvent[] }
  | { t: 'malformed'; s: number; topic: string; raw: string; error: Coded }
  | { t: 'link'; state: 'connecting' | 'connected' | 'down'; error?: string }
  | { t: 'tcp'; state: 'listening' | 'error'; port: number; error?: string }
  | { t: 'broker'; state: 'listening' | 'error'; port: number; error?: string };

/** Per-source counters are named `<what>.<source index>`. */
export const PER_SOURCE = ['received', 'parsed', 'dropped', 'malformed', 'gaps', 'duplicates', 'merged'] as const;

export function ingressMetricSpec(sources: number): MetricSpec {
  const counters: string[] = ['connects', 'disconnects', 'tcp_connections'];
  for (let i = 0; i < sources; i++) for (const c of PER_SOURCE) counters.push(`${c}.${i}`);
  return { counters, gauges: ['connected', 'tcp_clients'], histograms: [] };
}

/** Written by the flow side only: time from the worker's receive to the flow side taking the event. */
export const HANDOFF_METRICS: MetricSpec = {
  histograms: ['handoff'],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
};

/** The counters behind the metrics of one ingress node (node._counts(): tests, benchmarks). */
export interface IngressCounts {
  /** parsed = delivered + dropped + merged (+ those still in flight) */
  sources: Record<string, { received: number; parsed: number; delivered: number; dropped: number; malformed: number; gaps: number; duplicates: number; merged: number }>;
  depth: number;
  connected: number;
  connects: number;
  /** The error of the last link loss or refused connection ('' when none yet): what the linkDown warning says. */
  linkError: string;
}
