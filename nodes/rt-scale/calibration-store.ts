// Calibration made at run time (tare, calibrate) persists across restarts in a
// small JSON file per scale in the Node-RED user dir. It records the config
// values it was made from: when the user edits the zero or counts per gram in
// the editor, the edited values win and the stored calibration is dropped.
//
// Every file operation is asynchronous (fs/promises: never a sync call on the
// flow engine's thread) and every write is atomic and durable: a temp file of
// its own is written, fsynced and renamed over the file, then the directory is
// fsynced, so a power cut leaves the old or the new file, never a torn one.
// Writes to one file are serialised (the last one wins, in call order).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

import type { Calibration } from './sampler-core';

export interface StoredCalibration {
  zero: number;
  cpgMilli: number;
  basedOn: Calibration;
  how: 'tare' | 'calibrate';
  at: string;
}

/** The part of fs/promises the store uses (tests pass a recording one). */
export type StoreFs = Pick<typeof fsp, 'mkdir' | 'open' | 'readFile' | 'rename' | 'unlink'>;

let tmpSeq = 0;
/**
 * Writes under way, by file, for the whole process: a store made after a
 * redeploy reads a file only once the previous store's write to it is done.
 */
const chains = new Map<string, Promise<unknown>>();

export class CalibrationStore {
  private readonly chains = chains;

  constructor(
    private readonly dir: string,
    private readonly fs: StoreFs = fsp,
  ) {}

  private path(name: string): string {
    return join(this.dir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
  }

  private file(id: string): string {
    return this.path(`scale-${id}`);
  }

  /** The calibration to use: the stored one if it was made from these config values, else the config's. */
  async effective(id: string, config: Calibration): Promise<{ cal: Calibration; stored: StoredCalibration | null }> {
    const s = await this.read(id);
    if (s && s.basedOn.zero === config.zero && s.basedOn.cpgMilli === config.cpgMilli) return { cal: { zero: s.zero, cpgMilli: s.cpgMilli }, stored: s };
    return { cal: config, stored: null };
  }

  async read(id: string): Promise<StoredCalibration | null> {
    const v = await this.readJson<StoredCalibration>(this.file(id));
    if (v && Number.isInteger(v.zero) && Number.isInteger(v.cpgMilli) && v.cpgMilli !== 0 && v.basedOn) return v;
    return null;
  }

  /** Atomic, durable write (temp file + fsync + rename + directory fsync). */
  async write(id: string, cal: Calibration, basedOn: Calibration, how: 'tare' | 'calibrate'): Promise<StoredCalibration> {
    const v: StoredCalibration = { zero: cal.zero, cpgMilli: cal.cpgMilli, basedOn, how, at: new Date().toISOString() };
    await this.writeJson(this.file(id), v);
    return v;
  }

  /** Other learned state kept beside the calibration (e.g. a dosing node's in-flight time). */
  readState<T>(name: string): Promise<T | null> {
    return this.readJson<T>(this.path(name));
  }

  writeState(name: string, value: unknown): Promise<void> {
    return this.writeJson(this.path(name), value);
  }

  /** Resolves when every write under way in this directory has completed (or failed). */
  async idle(): Promise<void> {
    const mine = [...this.chains.entries()].filter(([f]) => f.startsWith(this.dir)).map(([, p]) => p.catch(() => undefined));
    await Promise.all(mine);
  }

  private async readJson<T>(file: string): Promise<T | null> {
    await this.chains.get(file)?.catch(() => undefined); // a write under way is read once it is complete
    try {
      return JSON.parse(await this.fs.readFile(file, 'utf8')) as T;
    } catch {
      return null; // none yet, or unreadable: the config's values apply
    }
  }

  private writeJson(file: string, value: unknown): Promise<void> {
    const prev = this.chains.get(file) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.writeAtomic(file, `${JSON.stringify(value, null, 2)}\n`));
    this.chains.set(file, next);
    const forget = (): void => {
      if (this.chains.get(file) === next) this.chains.delete(file);
    };
    next.then(forget, forget);
    return next;
  }

  private async writeAtomic(file: string, text: string): Promise<void> {
    await this.fs.mkdir(this.dir, { recursive: true });
    const tmp = `${file}.${process.pid}.${++tmpSeq}.tmp`;
    const fh = await this.fs.open(tmp, 'w');
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await this.fs.unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    try {
      await this.fs.rename(tmp, file);
    } catch (err) {
      await this.fs.unlink(tmp).catch(() => undefined);
      throw err;
    }
    // the rename is durable once the directory entry is on disk
    let dh: Awaited<ReturnType<StoreFs['open']>> | null = null;
    try {
      dh = await this.fs.open(this.dir, 'r');
      await dh.sync();
    } catch {
      /* some file systems cannot fsync a directory: the data itself is synced */
    } finally {
      await dh?.close().catch(() => undefined);
    }
  }
}
