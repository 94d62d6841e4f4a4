// Versioned node config. Each node type keeps a list of {version, up} steps;
// a config saved by an older release is upgraded in the constructor, step by
// step, before it is read (the HA nodes' migrations idea). Pure; tested.

export interface Migration<T extends Record<string, unknown>> {
  /** The version this step produces. */
  version: number;
  up(def: T): T;
}

export function migrate<T extends Record<string, unknown>>(def: T, steps: ReadonlyArray<Migration<T>>): T {
  let cur: T = { ...def };
  const from = typeof cur.version === 'number' ? cur.version : Number(cur.version) || 0;
  for (const s of [...steps].sort((a, b) => a.version - b.version)) {
    if (s.version > from) cur = { ...s.up(cur), version: s.version };
  }
  return cur;
}

/** Integer in [min, max], or the default when missing/invalid. */
export function clampInt(v: unknown, min: number, max: number, dflt: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n)) return dflt;
  return Math.min(max, Math.max(min, Math.round(n)));
}

export function oneOf<T extends string>(v: unknown, allowed: readonly T[], dflt: T): T {
  return typeof v === 'string' && (allowed as readonly string[]).includes(v) ? (v as T) : dflt;
}

export function bool(v: unknown, dflt: boolean): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true') return true;
  if (v === 'false') return false;
  return dflt;
}
