// Config of rt-dosing: versioned, migrated, validated, turned into controller
// parameters (integer centigrams, microseconds, permille). Pure.
import { type Coded, coded } from '../shared/coded';
import { LIMITS, limitOk, readLimited } from '../shared/limits';
import { type Migration, migrate } from '../shared/migrate';
import type { NodeDef } from '../shared/red-types';
import type { DosingParams } from './dosing-core';

export interface DosingDef extends NodeDef {
  version?: number;
  scale?: string;
  coarsePct?: number | string;
  finePct?: number | string;
  fineBandG?: number | string;
  toleranceG?: number | string;
  maxTimeS?: number | string;
  neverExceedG?: number | string;
  noProgressG?: number | string;
  containerDropG?: number | string;
  topUps?: number | string;
  /** Version 1 only: the share of each error the in-flight time moved by (1/N); replaced by learnDoses in version 2. */
  learnDiv?: number | string;
  /** How many recent doses the learned in-flight time is the median of (version 2). */
  learnDoses?: number | string;
  progressHz?: number | string;
}

export interface DosingConfig {
  params: Partial<DosingParams>;
  progressEveryMs: number;
  /** Problems found in the config (empty when valid), as codes of DOSING_PROBLEMS. */
  problems: Coded[];
}

/** Codes of config problems (catalog rt-dosing.codes.<code>). */
export const DOSING_PROBLEMS = [
  'bad-coarse',
  'bad-fine',
  'fine-above-coarse',
  'bad-fine-band',
  'bad-tolerance',
  'bad-max-time',
  'bad-never-exceed',
  'bad-no-progress',
  'bad-container-drop',
  'out-of-range',
  'out-of-range-whole',
] as const;
type Problem = (typeof DOSING_PROBLEMS)[number];

const MIGRATIONS: ReadonlyArray<Migration<DosingDef>> = [
  { version: 1, up: (d) => ({ coarsePct: 100, finePct: 10, fineBandG: 2, toleranceG: 0.1, maxTimeS: 60, neverExceedG: 0, noProgressG: 0.5, containerDropG: 20, topUps: 0, learnDiv: 4, progressHz: 5, ...d }) },
  // Version 2: the learning controller takes the median of recent doses' in-flight times, so "Learning: 1/N
  // of each error" (learnDiv, read by nothing since) becomes "learn from the last N doses" (learnDoses). N has
  // no counterpart in 1/N: the default applies. The fine band keeps its stored value (a user's 2 g stays a
  // 2 g minimum fine mass); only the editor's default for new nodes is 0 (automatic).
  {
    version: 2,
    up: (d) => {
      const { learnDiv: _unused, ...rest } = d;
      return { learnDoses: DEFAULT_LEARN_DOSES, ...rest };
    },
  },
];

/** The editor's default of learnDoses (and the migration's). */
export const DEFAULT_LEARN_DOSES = 9;

const num = (v: unknown): number => (typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN);
const cg = (g: number): number => Math.round(g * 100);

export function readDosing(raw: DosingDef, capacityCg: number): DosingConfig {
  const d = migrate(raw, MIGRATIONS);
  const problems: Coded[] = [];
  // the ranges are shared/limits.ts (the editor validates with the same table); a value is required
  const L = LIMITS['rt-dosing'];
  const need = (field: keyof typeof L, bad: Problem): number => {
    const n = num(d[field]);
    if (!Number.isFinite(n) || !limitOk(n, L[field])) problems.push(coded(bad));
    return n;
  };
  const coarse = need('coarsePct', 'bad-coarse');
  const fine = need('finePct', 'bad-fine');
  if (fine > coarse) problems.push(coded('fine-above-coarse' satisfies Problem));
  const band = need('fineBandG', 'bad-fine-band');
  const tol = need('toleranceG', 'bad-tolerance');
  const maxT = need('maxTimeS', 'bad-max-time');
  const nex = need('neverExceedG', 'bad-never-exceed');
  const noProg = need('noProgressG', 'bad-no-progress');
  const drop = need('containerDropG', 'bad-container-drop');
  const topUps = Math.round(readLimited('rt-dosing', 'topUps', d.topUps, 0, problems));
  const learnDoses = Math.round(readLimited('rt-dosing', 'learnDoses', d.learnDoses, DEFAULT_LEARN_DOSES, problems));
  const hz = readLimited('rt-dosing', 'progressHz', d.progressHz, 5, problems);
  const params: Partial<DosingParams> = {
    coarseDuty: Math.round(coarse * 10),
    fineDuty: Math.round(fine * 10),
    fineBandCg: cg(band), // a minimum fine mass; 0 = derived from what was measured
    toleranceCg: Math.max(1, cg(tol)),
    maxDoseUs: Math.round(maxT * 1e6),
    neverExceedCg: nex > 0 ? cg(nex) : capacityCg,
    noProgressCg: noProg > 0 ? cg(noProg) : 0,
    containerDropCg: drop > 0 ? cg(drop) : 1_000_000_000,
    topUpMax: topUps,
    topUpPulseUs: topUps > 0 ? 100_000 : 0,
    learnDoses,
  };
  return { params, progressEveryMs: hz > 0 ? Math.max(50, Math.round(1000 / hz)) : 0, problems };
}
