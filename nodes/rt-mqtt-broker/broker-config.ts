// Config of rt-mqtt-broker: versioned, migrated, validated. Pure.
// An empty URL means "the embedded broker": an aedes broker in the MQTT worker
// thread, listening on `port` (bind address `bind`), that the clients of this
// config connect to. A URL (mqtt://, mqtts://, tcp://, ssl://, ws://, wss://)
// points at any other broker (mosquitto, EMQX, HiveMQ...).
import { readFileSync } from 'node:fs';

import type { IClientOptions } from 'mqtt';

import { type Coded, coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { bool, type Migration, migrate } from '../shared/migrate';
import type { Node, NodeDef } from '../shared/red-types';
import type { MqttSettings } from '../rt-mqtt-ingress/ingress-protocol';

export interface BrokerDef extends NodeDef {
  version?: number;
  url?: string;
  port?: number | string;
  bind?: string;
  clientId?: string;
  clean?: boolean | string;
  keepalive?: number | string;
  protocol?: string;
  tls?: boolean | string;
  ca?: string;
  cert?: string;
  key?: string;
  verify?: boolean | string;
  backoffMin?: number | string;
  backoffMax?: number | string;
}

export interface BrokerConfig {
  embedded: boolean;
  /** The URL clients connect to (the embedded broker's loopback URL when embedded). */
  url: string;
  port: number;
  bind: string;
  clientId: string;
  clean: boolean;
  keepaliveS: number;
  protocolVersion: 4 | 5;
  tls: boolean;
  ca: string;
  cert: string;
  key: string;
  verify: boolean;
  backoffMinMs: number;
  backoffMaxMs: number;
  problems: Coded[];
}

/** Codes of config problems (catalog rt-mqtt-broker.codes / rt-mqtt-ingress.codes). */
export const BROKER_PROBLEMS = ['bad-url', 'persistent-needs-id', 'out-of-range', 'out-of-range-whole'] as const;

const MIGRATIONS: ReadonlyArray<Migration<BrokerDef>> = [
  {
    version: 1,
    up: (d) => ({ url: '', port: 1883, bind: '127.0.0.1', clientId: '', clean: true, keepalive: 30, protocol: '4', tls: false, verify: true, backoffMin: 100, backoffMax: 10000, ...d }),
  },
];

const URL_RE = /^(mqtts?|tcp|ssl|tls|wss?):\/\/[^\s/]+/i;

export function readBroker(raw: BrokerDef): BrokerConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const url = typeof d.url === 'string' ? d.url.trim() : '';
  if (url && !URL_RE.test(url)) problems.push(coded('bad-url', { url: url.slice(0, 80) }));
  const lim = (field: 'port' | 'keepalive' | 'backoffMin' | 'backoffMax', dflt: number): number => Math.round(readLimited('rt-mqtt-broker', field, d[field], dflt, problems));
  const port = lim('port', 1883);
  const bind = typeof d.bind === 'string' && d.bind.trim() ? d.bind.trim() : '127.0.0.1';
  const clientIdRaw = typeof d.clientId === 'string' ? d.clientId.trim() : '';
  const clean = bool(d.clean, true);
  if (!clean && !clientIdRaw) problems.push(coded('persistent-needs-id'));
  const backoffMinMs = lim('backoffMin', 100);
  const tls = bool(d.tls, false);
  const embedded = url === '';
  const connectHost = bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind;
  return {
    embedded,
    url: embedded ? `mqtt://${connectHost.includes(':') ? `[${connectHost}]` : connectHost}:${port}` : url,
    port,
    bind,
    clientId: clientIdRaw,
    clean,
    keepaliveS: lim('keepalive', 30),
    protocolVersion: String(d.protocol) === '5' ? 5 : 4,
    tls,
    ca: tls && typeof d.ca === 'string' ? d.ca.trim() : '',
    cert: tls && typeof d.cert === 'string' ? d.cert.trim() : '',
    key: tls && typeof d.key === 'string' ? d.key.trim() : '',
    verify: bool(d.verify, true),
    backoffMinMs,
    backoffMaxMs: Math.max(backoffMinMs, lim('backoffMax', 10_000)),
    problems,
  };
}

/**
 * The settings one client of this broker uses. `suffix` makes the client id
 * unique per node (two clients with one id would throw each other off the
 * broker); a config without a client id gets a random one (clean session).
 */
export function clientSettings(c: BrokerConfig, creds: { user?: string; password?: string } | undefined, suffix: string, random: () => string): MqttSettings {
  const clientId = c.clientId ? `${c.clientId}${suffix}` : `rtedge-${random()}`;
  return {
    url: c.url,
    clientId,
    clean: c.clean,
    keepaliveS: c.keepaliveS,
    protocolVersion: c.protocolVersion,
    ...(creds?.user ? { username: creds.user } : {}),
    ...(creds?.password ? { password: creds.password } : {}),
    ...(c.ca ? { ca: c.ca } : {}),
    ...(c.cert ? { cert: c.cert } : {}),
    ...(c.key ? { key: c.key } : {}),
    verify: c.verify,
    backoffMinMs: c.backoffMinMs,
    backoffMaxMs: c.backoffMaxMs,
  };
}

export interface BrokerNode extends Node {
  config: BrokerConfig;
  credentials?: { user?: string; password?: string };
  /** The worker key its clients share (with the embedded broker). */
  workerKey: string;
}

/**
 * The options of an MQTT client (mqtt package) for these settings, shared by the ingress worker and the
 * journey outbox. No automatic reconnect: each caller reconnects itself with reconnectDelay
 * (nodes/shared/backoff.ts) and reads the TLS files again before each attempt (readTlsFiles).
 */
export function mqttClientOptions(s: MqttSettings, extra: Partial<IClientOptions> = {}): IClientOptions {
  return {
    clientId: s.clientId,
    clean: s.clean,
    keepalive: s.keepaliveS,
    protocolVersion: s.protocolVersion,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    username: s.username,
    password: s.password,
    rejectUnauthorized: s.verify,
    ...extra,
  };
}

/** Reads the PEM files the settings name into the options (throws when one cannot be read: never connect without them). */
export function readTlsFiles(s: MqttSettings, opts: IClientOptions): void {
  if (s.ca) opts.ca = readFileSync(s.ca);
  if (s.cert) opts.cert = readFileSync(s.cert);
  if (s.key) opts.key = readFileSync(s.key);
}
