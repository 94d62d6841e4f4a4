// Calibration made at run time (tare, calibrate) persists across restarts in a
// small JSON file per scale in the Node-RED user dir. It records the config
// values it was made from: when the user edits the zero or counts per gram in
// the editor, the edited values win and the stored calibration is dropped.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Calibration } from './sampler-core';

export interface StoredCalibration {
  zero: number;
  cpgMilli: number;
  basedOn: Calibration;
  how: 'tare' | 'calibrate';
  at: string;
}

export class CalibrationStore {
  constructor(private readonly dir: string) {}

  private file(id: string): string {
    return join(this.dir, `scale-${id.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  }

  /** The calibration to use: the stored one if it was made from these config values, else the config's. */
  effective(id: string, config: Calibration): { cal: Calibration; stored: StoredCalibration | null } {
    const s = this.read(id);
    if (s && s.basedOn.zero === config.zero && s.basedOn.cpgMilli === config.cpgMilli) return { cal: { zero: s.zero, cpgMilli: s.cpgMilli }, stored: s };
    return { cal: config, stored: null };
  }

  read(id: string): StoredCalibration | null {
    try {
      const v = JSON.parse(readFileSync(this.file(id), 'utf8')) as StoredCalibration;
      if (Number.isInteger(v.zero) && Number.isInteger(v.cpgMilli) && v.cpgMilli !== 0 && v.basedOn) return v;
    } catch {
      /* none yet, or unreadable: the config's values apply */
    }
    return null;
  }

  /** Atomic write (temp file + rename). */
  write(id: string, cal: Calibration, basedOn: Calibration, how: 'tare' | 'calibrate'): StoredCalibration {
    mkdirSync(this.dir, { recursive: true });
    const v: StoredCalibration = { zero: cal.zero, cpgMilli: cal.cpgMilli, basedOn, how, at: new Date().toISOString() };
    const f = this.file(id);
    writeFileSync(`${f}.tmp`, `${JSON.stringify(v, null, 2)}\n`);
    renameSync(`${f}.tmp`, f);
    return v;
  }

  /** Other learned state kept beside the calibration (e.g. a dosing node's in-flight time). */
  readState<T>(name: string): T | null {
    try {
      return JSON.parse(readFileSync(join(this.dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`), 'utf8')) as T;
    } catch {
      return null;
    }
  }

  writeState(name: string, value: unknown): void {
    mkdirSync(this.dir, { recursive: true });
    const f = join(this.dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
    writeFileSync(`${f}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
    renameSync(`${f}.tmp`, f);
  }
}
