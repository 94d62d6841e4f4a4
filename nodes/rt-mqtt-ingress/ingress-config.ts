// Config of rt-mqtt-ingress: versioned, migrated, validated. Pure.
import { type Coded, coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { type Migration, migrate } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';
import { checkSourceName, checkTopicFilter, PARSERS, type ParserName } from './ingress-core';
import type { SourceSpec, SubSpec } from './ingress-protocol';

export interface SubDef {
  topic?: string;
  parser?: string;
  qos?: number | string;
  source?: string;
}

export interface IngressDef extends NodeDef {
  version?: number;
  broker?: string;
  subs?: SubDef[] | string;
  tcpPort?: number | string;
  tcpHost?: string;
  tcpSource?: string;
  queueLimit?: number | string;
  frameWindow?: number | string;
  frameRate?: number | string;
  maxBytes?: number | string;
}

export interface IngressConfig {
  sources: SourceSpec[];
  subs: SubSpec[];
  tcp: { host: string; port: number; source: number; name: string } | null;
  queueLimit: number;
  /** Frames (parser tracks) handed to the flow and not yet processed by it, at most, per source (capped by queueLimit). */
  frameWindow: number;
  /** Frames per second per sensor handed to the flow at most (the others merged into the next); 0: every frame. */
  frameRate: number;
  maxBytes: number;
  problems: Coded[];
}

/** Default frame window: at ~10k frames/s through a tracker, about 10 ms of frames waiting on the flow engine. */
export const FRAME_WINDOW = 128;

/** Codes of config problems (catalog rt-mqtt-ingress.codes.<code>). */
export const INGRESS_PROBLEMS = ['bad-topic', 'bad-parser', 'bad-qos', 'bad-source', 'source-parser-clash', 'nothing-to-do', 'no-broker', 'out-of-range', 'out-of-range-whole'] as const;

export const MIGRATIONS: ReadonlyArray<Migration<IngressDef>> = [
  {
    version: 1,
    up: (d) => ({ subs: [], tcpPort: '', tcpHost: '127.0.0.1', tcpSource: 'acc-tcp', queueLimit: 4096, maxBytes: 262144, ...d }),
  },
];

function subsOf(v: unknown): SubDef[] {
  if (Array.isArray(v)) return v as SubDef[];
  if (typeof v === 'string' && v.trim()) {
    try {
      const a = JSON.parse(v) as unknown;
      return Array.isArray(a) ? (a as SubDef[]) : [];
    } catch {
      return [];
    }
  }
  return [];
}

/** hasBroker: a broker config is selected (subscriptions need one). */
export function readIngress(raw: IngressDef, hasBroker: boolean): IngressConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const sources: SourceSpec[] = [];
  const byName = new Map<string, number>();
  const sourceIndex = (name: string, parser: ParserName): number => {
    const i = byName.get(name);
    if (i !== undefined) {
      if (sources[i].parser !== parser) problems.push(coded('source-parser-clash', { source: name }));
      return i;
    }
    sources.push({ name, parser });
    byName.set(name, sources.length - 1);
    return sources.length - 1;
  };
  const subs: SubSpec[] = [];
  for (const s of subsOf(d.subs)) {
    const topic = typeof s.topic === 'string' ? s.topic.trim() : '';
    if (!checkTopicFilter(topic)) {
      problems.push(coded('bad-topic', { topic: topic.slice(0, 80) }));
      continue;
    }
    const parser = s.parser as ParserName;
    if (!(PARSERS as readonly string[]).includes(String(s.parser))) {
      problems.push(coded('bad-parser', { topic, parser: String(s.parser ?? '') }));
      continue;
    }
    const qos = Number(s.qos ?? 1);
    if (qos !== 0 && qos !== 1 && qos !== 2) {
      problems.push(coded('bad-qos', { topic }));
      continue;
    }
    const name = typeof s.source === 'string' && s.source.trim() ? s.source.trim() : parser;
    if (!checkSourceName(name)) {
      problems.push(coded('bad-source', { source: name.slice(0, 80) }));
      continue;
    }
    subs.push({ topic, qos, source: sourceIndex(name, parser) });
  }
  const tcpPort = Math.round(readLimited('rt-mqtt-ingress', 'tcpPort', d.tcpPort, 0, problems));
  let tcp: IngressConfig['tcp'] = null;
  const tcpOn = d.tcpPort !== undefined && d.tcpPort !== null && String(d.tcpPort).trim() !== '';
  if (tcpOn) {
    const name = typeof d.tcpSource === 'string' && d.tcpSource.trim() ? d.tcpSource.trim() : 'acc-tcp';
    if (!checkSourceName(name)) problems.push(coded('bad-source', { source: name.slice(0, 80) }));
    else {
      const host = typeof d.tcpHost === 'string' && d.tcpHost.trim() ? d.tcpHost.trim() : '127.0.0.1';
      tcp = { host, port: tcpPort, source: sourceIndex(name, 'auth'), name };
    }
  }
  if (subs.length > 0 && !hasBroker) problems.push(coded('no-broker'));
  else if (!tcp && subs.length === 0 && problems.length === 0) problems.push(coded('nothing-to-do'));
  const frameRate = Math.round(readLimited('rt-mqtt-ingress', 'frameRate', d.frameRate, 0, problems));
  if (frameRate > 0) for (const src of sources) if (src.parser === 'tracks') src.frameGapMs = 1000 / frameRate;
  return {
    sources,
    subs: hasBroker ? subs : [],
    tcp,
    queueLimit: Math.round(readLimited('rt-mqtt-ingress', 'queueLimit', d.queueLimit, 4096, problems)),
    frameWindow: Math.round(readLimited('rt-mqtt-ingress', 'frameWindow', d.frameWindow, FRAME_WINDOW, problems)),
    frameRate,
    maxBytes: Math.round(readLimited('rt-mqtt-ingress', 'maxBytes', d.maxBytes, 262144, problems)),
    problems,
  };
}
