// The calibration store: asynchronous, atomic and durable writes (temp file +
// fsync + rename + directory fsync), serialised per file; reads wait for a
// write under way; a failed write leaves the old file and no temp file.
import assert from 'node:assert/strict';
import { existsSync, promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { CalibrationStore, type StoreFs } from '../../../nodes/rt-scale/calibration-store';
import { tempDir } from '../../helpers/util';

/** fs/promises that records every call (and the file-handle calls) in order. */
function recordingFs(log: string[], failSync = false): StoreFs {
  const name = (p: unknown): string => String(p).split(/[\\/]/).pop()!.replace(/\.\d+\.\d+\.tmp$/, '.TMP');
  return {
    mkdir: ((p: string, o: object) => {
      log.push('mkdir');
      return fsp.mkdir(p, o);
    }) as StoreFs['mkdir'],
    readFile: fsp.readFile,
    unlink: ((p: string) => {
      log.push(`unlink ${name(p)}`);
      return fsp.unlink(p);
    }) as StoreFs['unlink'],
    rename: ((a: string, b: string) => {
      log.push(`rename ${name(a)} ${name(b)}`);
      return fsp.rename(a, b);
    }) as StoreFs['rename'],
    open: (async (p: string, flags: string) => {
      const fh = await fsp.open(p, flags);
      const n = name(p);
      log.push(`open ${n} ${flags}`);
      return {
        writeFile: (d: string, e: BufferEncoding) => {
          log.push(`write ${n}`);
          return fh.writeFile(d, e);
        },
        sync: () => {
          log.push(`fsync ${n}`);
          return failSync ? Promise.reject(new Error('EIO')) : fh.sync();
        },
        close: () => {
          log.push(`close ${n}`);
          return fh.close();
        },
      };
    }) as unknown as StoreFs['open'],
  };
}

describe('calibration store', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('rt-calstore-');
  });
  afterEach(() => tmp.cleanup());

  it('writes atomically and durably: temp file, fsync, close, rename over the file, directory fsync', async () => {
    const log: string[] = [];
    const dir = join(tmp.dir, 'cal');
    const store = new CalibrationStore(dir, recordingFs(log));
    const v = await store.write('s1', { zero: 100, cpgMilli: 420_000 }, { zero: 84_000, cpgMilli: 420_000 }, 'tare');
    assert.deepEqual(log, ['mkdir', 'open scale-s1.json.TMP w', 'write scale-s1.json.TMP', 'fsync scale-s1.json.TMP', 'close scale-s1.json.TMP', 'rename scale-s1.json.TMP scale-s1.json', 'open cal r', 'fsync cal', 'close cal']);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'scale-s1.json'), 'utf8')), v);
    assert.deepEqual(readdirSync(dir), ['scale-s1.json'], 'no temp file left');
    assert.deepEqual((await store.effective('s1', { zero: 84_000, cpgMilli: 420_000 })).cal, { zero: 100, cpgMilli: 420_000 });
    assert.deepEqual((await store.effective('s1', { zero: 1, cpgMilli: 2 })).cal, { zero: 1, cpgMilli: 2 }, 'edited config values win');
  });

  it('returns before touching the disk (asynchronous), serialises writes to one file, and a read waits for the write under way', async () => {
    const log: string[] = [];
    const store = new CalibrationStore(tmp.dir, recordingFs(log));
    const a = store.writeState('dosing-a', { tauUs: 1 });
    const b = store.writeState('dosing-a', { tauUs: 2 });
    assert.equal(log.length, 0, 'nothing done synchronously on the calling thread');
    const r = store.readState<{ tauUs: number }>('dosing-a');
    await Promise.all([a, b]);
    assert.deepEqual(await r, { tauUs: 2 }, 'the read saw the completed writes');
    const renames = log.filter((l) => l.startsWith('rename'));
    assert.equal(renames.length, 2);
    assert.ok(log.indexOf(renames[0]) < log.lastIndexOf('open dosing-a.json.TMP w'), 'the second write starts after the first is renamed');
    assert.deepEqual(await store.readState('dosing-a'), { tauUs: 2 });
  });

  it('a failed write rejects, keeps the old file and leaves no temp file', async () => {
    writeFileSync(join(tmp.dir, 'dosing-b.json'), '{"tauUs":7}\n');
    const store = new CalibrationStore(tmp.dir, recordingFs([], true));
    await assert.rejects(store.writeState('dosing-b', { tauUs: 8 }), /EIO/);
    assert.deepEqual(readdirSync(tmp.dir), ['dosing-b.json']);
    assert.deepEqual(JSON.parse(readFileSync(join(tmp.dir, 'dosing-b.json'), 'utf8')), { tauUs: 7 });
    assert.equal(existsSync(join(tmp.dir, 'dosing-b.json.tmp')), false);
  });
});
