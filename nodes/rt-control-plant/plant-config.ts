// Config of rt-control-plant: versioned, migrated, copied and checked against
// the shared limits (nodes/shared/limits.ts). Pure: no Node-RED import.
import type { Coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { type Migration, migrate } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';
import type { SafetyConfig, Setpoints } from './plant-core';

export interface PlantDef extends NodeDef {
  version?: number;
  tickMs?: number | string;
  overTempC?: number | string;
  hysteresisC?: number | string;
  rpmLimit?: number | string;
  maxBody?: number | string;
  logMs?: number | string;
  uiMs?: number | string;
  writeTimeoutMs?: number | string;
}

export const MIGRATIONS: ReadonlyArray<Migration<PlantDef>> = [
  // v1: first release.
  { version: 1, up: (d) => ({ ...d }) },
];

export interface PlantConfig {
  tickMs: number;
  safety: SafetyConfig;
  maxBody: number;
  logMs: number;
  uiMs: number;
  writeTimeoutMs: number;
  problems: Coded[];
}

/** The set points in force when the node starts: heaters at 220 °C and 40 %, motor stopped. */
export const START_SETPOINTS: Setpoints = { targets: [220, 220], dutySets: [40, 40], rpmSet: 0 };

/** Copies and checks the editor config; never throws. */
export function readConfig(raw: PlantDef): PlantConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  const T = 'rt-control-plant' as const;
  return {
    tickMs: readLimited(T, 'tickMs', d.tickMs, 20, problems),
    safety: {
      overTempC: readLimited(T, 'overTempC', d.overTempC, 260, problems),
      hysteresisC: readLimited(T, 'hysteresisC', d.hysteresisC, 10, problems),
      rpmLimit: readLimited(T, 'rpmLimit', d.rpmLimit, 1900, problems),
    },
    maxBody: readLimited(T, 'maxBody', d.maxBody, 1024, problems),
    logMs: readLimited(T, 'logMs', d.logMs, 100, problems),
    uiMs: readLimited(T, 'uiMs', d.uiMs, 500, problems),
    writeTimeoutMs: readLimited(T, 'writeTimeoutMs', d.writeTimeoutMs, 2000, problems),
    problems,
  };
}
