// Config of rt-journey-tracker: versioned, migrated, copied and checked against
// the shared limits (nodes/shared/limits.ts, the editor's rule set too).
// Pure: no Node-RED import.
import { type Coded, coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import type { Migration } from '../shared/migrate';
import { migrate } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';
import { DEFAULTS, type TrackerConfig } from './tracker-core';

export interface TrackerDef extends NodeDef {
  version?: number;
  storeZones?: string;
  posZones?: string;
  gateZone?: string;
  entryLine?: string;
  exitLine?: string;
  gate?: string;
  doorKey?: string;
  ttl?: number | string;
  stitchMs?: number | string;
  stitchM?: number | string;
  maxTracks?: number | string;
  authSlack?: number | string;
  authHold?: number | string;
  reopen?: number | string;
}

export const MIGRATIONS: ReadonlyArray<Migration<TrackerDef>> = [
  // v1: first release.
  { version: 1, up: (d) => ({ doorKey: 'door', ...d }) },
];

export interface ReadTrackerConfig {
  tracker: TrackerConfig;
  /** the flow-context key rt-rs485-watch writes the door state to */
  doorKey: string;
  problems: Coded[];
}

/** Names from a comma/space separated list, trimmed, without duplicates. */
export function nameList(v: unknown): string[] {
  if (typeof v !== 'string') return [];
  return [...new Set(v.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean))];
}

const name = (v: unknown, dflt: string): string => (typeof v === 'string' && v.trim() !== '' ? v.trim() : dflt);

/** Copies and checks the editor config; never throws. */
export function readTrackerConfig(raw: TrackerDef): ReadTrackerConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const storeZones = raw.storeZones === undefined ? ['store'] : nameList(d.storeZones);
  const posZones = raw.posZones === undefined ? ['pos-1', 'pos-2'] : nameList(d.posZones);
  const gateZone = name(d.gateZone, 'gate');
  if (posZones.length === 0) problems.push(coded('no-pos-zones'));
  const seen = new Map<string, string>();
  for (const [role, names] of [
    ['store', storeZones],
    ['pos', posZones],
    ['gate', [gateZone]],
  ] as const) {
    for (const n of names) {
      const other = seen.get(n);
      if (other !== undefined) problems.push(coded('zone-twice', { zone: n }));
      seen.set(n, role);
    }
  }
  const entryLine = name(d.entryLine, 'entry');
  const exitLine = name(d.exitLine, 'exit');
  if (entryLine === exitLine) problems.push(coded('same-lines', { line: entryLine }));
  const tracker: TrackerConfig = {
    storeZones,
    posZones,
    gateZone,
    entryLine,
    exitLine,
    gate: name(d.gate, 'G1'),
    ttlMs: readLimited('rt-journey-tracker', 'ttl', d.ttl, DEFAULTS.ttlMs, problems),
    stitchMs: readLimited('rt-journey-tracker', 'stitchMs', d.stitchMs, DEFAULTS.stitchMs, problems),
    stitchM: readLimited('rt-journey-tracker', 'stitchM', d.stitchM, DEFAULTS.stitchM, problems),
    maxTracks: readLimited('rt-journey-tracker', 'maxTracks', d.maxTracks, DEFAULTS.maxTracks, problems),
    authSlackMs: readLimited('rt-journey-tracker', 'authSlack', d.authSlack, DEFAULTS.authSlackMs, problems),
    authHoldMs: readLimited('rt-journey-tracker', 'authHold', d.authHold, DEFAULTS.authHoldMs, problems),
    reopenMs: readLimited('rt-journey-tracker', 'reopen', d.reopen, DEFAULTS.reopenMs, problems),
    debugEvery: DEFAULTS.debugEvery,
  };
  return { tracker, doorKey: name(d.doorKey, 'door'), problems };
}
