// What an rt-dosing node keeps per station (dosing node + scale) in the
// scale's store (the user dir): the whole LearnedPlant of its controller,
// written after every dose that was not aborted, read at start and handed to
// the dose runner, so a redeploy, a restart or a worker restart continue from
// it instead of probing again. Pure.
//
// The LearnedPlant is the controller's own plain JSON: it is kept and handed
// back as it is (fields may be added by later versions; the controller takes
// what it knows). Files of older versions hold only `{tauUs}` (the learned
// in-flight time): that is handed over as a bare number, which the controller
// accepts. A "forget" writes a file with no plant, so an older file of the
// legacy name is not read again.
import type { LearnedPlant } from './dosing-core';

export interface StoredLearning {
  /** The controller's learned plant (null: forgotten, or nothing learned yet). */
  learned: LearnedPlant | null;
  /** The learned in-flight time (us) also on its own, for an older version reading this file. */
  tauUs?: number;
  at: string;
  /** Set when the user asked to forget (the editor's action). */
  forgotten?: boolean;
}

/** What to start the runner from. */
export type Prior = LearnedPlant | number | null;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A learned plant as stored: a plain object with a numeric version (its other fields are the controller's business). */
export function isLearnedPlant(v: unknown): v is LearnedPlant {
  return isObj(v) && typeof v.version === 'number' && Number.isFinite(v.version);
}

/**
 * The prior found in a stored file: the learned plant; an older version's
 * bare in-flight time; null for a forgotten or unreadable file; undefined
 * when the file says nothing (so the legacy file may be tried).
 */
export function priorOf(stored: unknown): Prior | undefined {
  if (!isObj(stored)) return undefined;
  if (isLearnedPlant(stored.learned)) return stored.learned;
  if (stored.forgotten === true) return null;
  const tau = stored.tauUs;
  if (typeof tau === 'number' && Number.isInteger(tau) && tau > 0) return tau;
  return undefined;
}

/** The file content for a learned plant (or for "forgotten"). */
export function storedLearning(learned: LearnedPlant | null, at = new Date()): StoredLearning {
  if (!learned) return { learned: null, at: at.toISOString(), forgotten: true };
  const tau = typeof learned.tauUs === 'number' && learned.tauUs > 0 ? { tauUs: learned.tauUs } : {};
  return { learned, ...tau, at: at.toISOString() };
}

/** The in-flight time (us) of a prior, 0 when unknown. */
export function priorTauUs(p: Prior): number {
  if (typeof p === 'number') return p > 0 ? p : 0;
  return p && typeof p.tauUs === 'number' && p.tauUs > 0 ? p.tauUs : 0;
}
