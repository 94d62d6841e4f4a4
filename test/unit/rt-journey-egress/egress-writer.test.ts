import assert from 'node:assert/strict';
import * as realFs from 'node:fs';
import { join } from 'node:path';

import { EgressWriter, type FlushReport, type FsLike, type TornReport, type WriterOptions } from '../../../nodes/rt-journey-egress/egress-writer';
import { tempDir } from '../../helpers/util';

/** An in-memory fs that records every call, and can be told to fail. */
class StubFs implements FsLike {
  files = new Map<string, string>();
  fds = new Map<number, string>();
  calls: string[] = [];
  nextFd = 10;
  failWrites: NodeJS.ErrnoException | null = null;
  /** Write only this many bytes before failing (simulates a partial write then ENOSPC). */
  partialThenFail = -1;
  openSync(path: string, flags = 'a'): number {
    if (flags === 'r' && !this.files.has(path)) throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' });
    this.calls.push(`open ${path}`);
    if (!this.files.has(path)) this.files.set(path, '');
    const fd = this.nextFd++;
    this.fds.set(fd, path);
    return fd;
  }
  writeSync(fd: number, buf: Buffer, offset = 0, length = buf.length): number {
    const p = this.fds.get(fd)!;
    if (this.partialThenFail >= 0) {
      const n = this.partialThenFail;
      this.partialThenFail = -1;
      this.files.set(p, this.files.get(p)! + buf.subarray(offset, offset + n).toString());
      this.failWrites = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      return n;
    }
    if (this.failWrites) throw this.failWrites;
    this.calls.push(`write ${p}`);
    this.files.set(p, this.files.get(p)! + buf.subarray(offset, offset + length).toString());
    return length;
  }
  fsyncSync(fd: number): void {
    this.calls.push(`fsync ${this.fds.get(fd)}`);
  }
  closeSync(fd: number): void {
    this.calls.push(`close ${this.fds.get(fd)}`);
    this.fds.delete(fd);
  }
  fstatSync(fd: number): { size: number } {
    return { size: Buffer.byteLength(this.files.get(this.fds.get(fd)!)!) };
  }
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
    const data = Buffer.from(this.files.get(this.fds.get(fd)!)!);
    return data.copy(buf, offset, position, Math.min(data.length, position + length));
  }
  ftruncateSync(fd: number, len: number): void {
    const p = this.fds.get(fd)!;
    this.calls.push(`truncate ${p} ${len}`);
    this.files.set(p, Buffer.from(this.files.get(p)!).subarray(0, len).toString());
  }
  mkdirSync(): unknown {
    return undefined;
  }
}

class FakeTimers {
  now = Date.UTC(2026, 10, 24, 23, 59, 59);
  private q: Array<{ at: number; fn: () => void; id: number }> = [];
  private id = 1;
  set = (fn: () => void, ms: number): unknown => {
    const id = this.id++;
    this.q.push({ at: this.now + ms, fn, id });
    return id;
  };
  clear = (h: unknown): void => {
    this.q = this.q.filter((t) => t.id !== h);
  };
  get pendingTimers(): number {
    return this.q.length;
  }
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      this.q.sort((a, b) => a.at - b.at);
      const t = this.q[0];
      if (!t || t.at > end) break;
      this.q.shift();
      this.now = t.at;
      t.fn();
    }
    this.now = end;
  }
}

function setup(opts: Partial<WriterOptions> = {}) {
  const fs = new StubFs();
  const timers = new FakeTimers();
  const reports: FlushReport[] = [];
  const errors: string[] = [];
  const recovered: string[] = [];
  const torn: TornReport[] = [];
  const w = new EgressWriter(
    { pattern: '/j/j-%Y-%m-%d.jsonl', count: 10, intervalMs: 1000, fsync: 'none', utc: true, createDir: false, retryInitialMs: 100, retryMaxMs: 1000, ...opts },
    fs,
    { now: () => timers.now, hrUs: () => timers.now * 1000 },
    { set: timers.set, clear: timers.clear },
    {
      flushed: (r) => reports.push(r),
      error: (e) => errors.push(String(e.code)),
      recovered: (f) => recovered.push(f),
      torn: (r) => torn.push(r),
    },
  );
  return { fs, timers, reports, errors, recovered, torn, w };
}

const lines = (from: number, n: number): string[] => Array.from({ length: n }, (_, i) => JSON.stringify({ seq: from + i }));

describe('EgressWriter (worker side, fake clock and fs stub)', () => {
  it('flushes as soon as `count` lines are pending', () => {
    const { w, fs, timers, reports } = setup();
    w.append(1, lines(1, 9), Array(9).fill(timers.now));
    assert.equal(reports.length, 0);
    w.append(10, lines(10, 1), [timers.now]);
    assert.equal(reports.length, 1);
    assert.equal(reports[0].upTo, 10);
    assert.equal(reports[0].lines, 10);
    assert.equal(fs.files.get('/j/j-2026-11-24.jsonl')!.split('\n').length, 11);
  });

  it('flushes fewer lines after the interval', () => {
    const { w, timers, reports } = setup();
    w.append(1, lines(1, 3), Array(3).fill(timers.now));
    timers.advance(999);
    assert.equal(reports.length, 0);
    timers.advance(1);
    assert.equal(reports.length, 1);
    assert.equal(reports[0].upTo, 3);
  });

  it("fsync 'batch' syncs every flush; 'none' only at rotation and close", async () => {
    const a = setup({ fsync: 'batch' });
    a.w.append(1, lines(1, 10), Array(10).fill(a.timers.now));
    a.w.append(11, lines(11, 10), Array(10).fill(a.timers.now));
    assert.equal(a.fs.calls.filter((c) => c.startsWith('fsync')).length, 2);

    const b = setup({ fsync: 'none' });
    b.w.append(1, lines(1, 10), Array(10).fill(b.timers.now));
    b.w.append(11, lines(11, 10), Array(10).fill(b.timers.now));
    assert.equal(b.fs.calls.filter((c) => c.startsWith('fsync')).length, 0);
    // rotation: a line stamped after midnight UTC goes to the next day's file, old one fsynced + closed first
    const tomorrow = b.timers.now + 2000;
    b.w.append(21, lines(21, 10), Array(10).fill(tomorrow));
    const i = b.fs.calls.indexOf('fsync /j/j-2026-11-24.jsonl');
    assert.ok(i >= 0, 'rotation fsyncs the finished file');
    assert.equal(b.fs.calls[i + 1], 'close /j/j-2026-11-24.jsonl');
    assert.equal(b.fs.calls[i + 2], 'open /j/j-2026-11-25.jsonl');
    await b.w.close(b.timers.now + 1000, async () => undefined);
    assert.ok(b.fs.calls.includes('fsync /j/j-2026-11-25.jsonl'), 'close fsyncs');
    assert.equal(b.fs.files.get('/j/j-2026-11-24.jsonl')!.trim().split('\n').length, 20);
    assert.equal(b.fs.files.get('/j/j-2026-11-25.jsonl')!.trim().split('\n').length, 10);
  });

  it('splits one batch across the date boundary by each line\'s timestamp', () => {
    const { w, fs, timers } = setup();
    const ts = [...Array(5).fill(timers.now), ...Array(5).fill(timers.now + 1500)];
    w.append(1, lines(1, 10), ts);
    assert.deepEqual(fs.files.get('/j/j-2026-11-24.jsonl')!.trim().split('\n').map((l) => JSON.parse(l).seq), [1, 2, 3, 4, 5]);
    assert.deepEqual(fs.files.get('/j/j-2026-11-25.jsonl')!.trim().split('\n').map((l) => JSON.parse(l).seq), [6, 7, 8, 9, 10]);
  });

  it('undoes a partial write, keeps the lines, retries with backoff and recovers in order', () => {
    const { w, fs, timers, reports, errors, recovered } = setup();
    w.append(1, lines(1, 10), Array(10).fill(timers.now));
    fs.partialThenFail = 7; // 7 bytes land, then ENOSPC
    w.append(11, lines(11, 10), Array(10).fill(timers.now));
    assert.deepEqual(errors, ['ENOSPC']);
    assert.ok(fs.calls.some((c) => c.startsWith('truncate')), 'partial write truncated');
    assert.equal(w.pending, 10);
    // more lines arrive while failing: they queue behind
    w.append(21, lines(21, 5), Array(5).fill(timers.now));
    timers.advance(100);
    assert.deepEqual(errors, ['ENOSPC', 'ENOSPC'], 'first retry fails again');
    fs.failWrites = null;
    timers.advance(200); // second retry after 200 ms
    assert.equal(recovered.length, 1);
    assert.equal(w.pending, 0);
    const seqs = fs.files.get('/j/j-2026-11-24.jsonl')!.trim().split('\n').map((l) => JSON.parse(l).seq);
    assert.deepEqual(seqs, Array.from({ length: 25 }, (_, i) => i + 1), 'every line exactly once, in order');
    assert.equal(reports[reports.length - 1].upTo, 25);
  });

  it('a re-sent batch (after a host rewind) replaces the overlap instead of duplicating', () => {
    const { w, fs, timers } = setup({ count: 100 });
    w.append(1, lines(1, 5), Array(5).fill(timers.now));
    w.append(3, lines(3, 6), Array(6).fill(timers.now)); // 3..8
    timers.advance(1000);
    const seqs = fs.files.get('/j/j-2026-11-24.jsonl')!.trim().split('\n').map((l) => JSON.parse(l).seq);
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('close writes everything pending and leaves no timer', async () => {
    const { w, fs, timers } = setup();
    w.append(1, lines(1, 3), Array(3).fill(timers.now));
    const left = await w.close(timers.now + 1000, async () => undefined);
    assert.equal(left, 0);
    assert.equal(fs.files.get('/j/j-2026-11-24.jsonl')!.trim().split('\n').length, 3);
    assert.equal(timers.pendingTimers, 0);
  });

  it('close reports lines it could not write by the deadline', async () => {
    const { w, fs, timers } = setup();
    fs.failWrites = Object.assign(new Error('EACCES'), { code: 'EACCES' });
    w.append(1, lines(1, 3), Array(3).fill(timers.now));
    const left = await w.close(timers.now + 300, async (ms) => timers.advance(ms));
    assert.equal(left, 3);
  });

  it('with the real fs: a missing folder is an error until it appears', () => {
    const t = tempDir();
    try {
      const timers = new FakeTimers();
      const errors: string[] = [];
      let recovered = 0;
      const file = join(t.dir, 'sub', 'j.jsonl');
      const w = new EgressWriter(
        { pattern: file, count: 2, intervalMs: 1000, fsync: 'batch', utc: true, createDir: false, retryInitialMs: 100, retryMaxMs: 1000 },
        realFs,
        { now: () => timers.now, hrUs: () => timers.now * 1000 },
        { set: timers.set, clear: timers.clear },
        { flushed: () => undefined, error: (e) => errors.push(String(e.code)), recovered: () => recovered++ },
      );
      w.append(1, lines(1, 2), [timers.now, timers.now]);
      assert.deepEqual(errors, ['ENOENT']);
      realFs.mkdirSync(join(t.dir, 'sub'));
      timers.advance(100);
      assert.equal(recovered, 1);
      assert.equal(realFs.readFileSync(file, 'utf8'), '{"seq":1}\n{"seq":2}\n');
    } finally {
      t.cleanup();
    }
  });

  describe('torn tails (a last line without its newline, left by a crash)', () => {
    const F = '/j/j-2026-11-24.jsonl';
    it('moves the fragment to <file>.torn (fsynced) before cutting it off, then appends on a line of its own', () => {
      const { w, fs, timers, torn } = setup();
      fs.files.set(F, '{"seq":1}\n{"seq":2}\n{"seq":3,"ga');
      w.append(4, lines(4, 10), Array(10).fill(timers.now));
      assert.equal(fs.files.get(F), '{"seq":1}\n{"seq":2}\n' + lines(4, 10).join('\n') + '\n');
      const side = fs.files.get(F + '.torn')!;
      assert.ok(side.endsWith('\n'));
      assert.deepEqual(JSON.parse(side), { time: new Date(timers.now).toISOString(), file: F, offset: 20, bytes: 12, text: '{"seq":3,"ga' });
      assert.deepEqual(torn, [{ file: F, bytes: 12, offset: 20, to: F + '.torn', how: 'moved' }]);
      // Durable copy first, then the cut: a crash in between duplicates the record, never loses it.
      const i = fs.calls.indexOf(`write ${F}.torn`);
      assert.ok(i >= 0);
      assert.deepEqual(fs.calls.slice(i, i + 3), [`write ${F}.torn`, `fsync ${F}.torn`, `close ${F}.torn`]);
      assert.ok(fs.calls.indexOf(`truncate ${F} 20`) > i);
    });
    it('a file that is all fragment (no newline at all) is emptied into the side file', () => {
      const { w, fs, timers, torn } = setup();
      fs.files.set(F, '{"seq":1');
      w.append(2, lines(2, 10), Array(10).fill(timers.now));
      assert.equal(fs.files.get(F), lines(2, 10).join('\n') + '\n');
      assert.equal(torn[0].offset, 0);
      assert.equal(JSON.parse(fs.files.get(F + '.torn')!).text, '{"seq":1');
    });
    it('a tail too long to be a journey is ended with a newline in place, not copied', () => {
      const { w, fs, timers, torn } = setup({ tornMaxBytes: 100 });
      const junk = 'x'.repeat(150);
      fs.files.set(F, '{"seq":1}\n' + junk);
      w.append(2, lines(2, 10), Array(10).fill(timers.now));
      assert.equal(fs.files.get(F), '{"seq":1}\n' + junk + '\n' + lines(2, 10).join('\n') + '\n');
      assert.equal(fs.files.has(F + '.torn'), false);
      assert.equal(torn.length, 1);
      assert.equal(torn[0].how, 'ended');
      assert.equal(torn[0].offset, 160);
      assert.equal(torn[0].bytes, 150);
    });
    it('a clean file (ending with a newline) and an empty file are left alone', () => {
      const { w, fs, timers, torn } = setup();
      fs.files.set(F, '{"seq":1}\n');
      w.append(2, lines(2, 10), Array(10).fill(timers.now));
      assert.equal(fs.files.get(F), '{"seq":1}\n' + lines(2, 10).join('\n') + '\n');
      assert.deepEqual(torn, []);
      assert.equal(fs.files.has(F + '.torn'), false);
    });
    it('checks the file that rotation opens too', () => {
      const { w, fs, timers, torn } = setup();
      const next = '/j/j-2026-11-25.jsonl';
      fs.files.set(next, '{"seq":0}\n{"se');
      w.append(1, lines(1, 10), [...Array(5).fill(timers.now), ...Array(5).fill(timers.now + 2000)]);
      assert.equal(fs.files.get(next), '{"seq":0}\n' + lines(6, 5).join('\n') + '\n');
      assert.deepEqual(torn.map((t) => [t.file, t.bytes]), [[next, 4]]);
    });
    it('start() repairs the current file before any journey, and does not create a missing one', () => {
      const a = setup();
      a.w.start();
      assert.equal(a.fs.files.has(F), false);
      const b = setup();
      b.fs.files.set(F, '{"seq":1}\n{"s');
      b.w.start();
      assert.equal(b.fs.files.get(F), '{"seq":1}\n');
      assert.equal(b.torn.length, 1);
      assert.equal(b.fs.fds.size, 0, 'no descriptor left open');
    });
    it('drain(): once closing, every batch is written as it arrives', () => {
      const { w, timers, reports } = setup();
      w.append(1, lines(1, 3), Array(3).fill(timers.now));
      assert.equal(reports.length, 0);
      w.drain();
      assert.equal(reports.length, 1);
      w.append(4, lines(4, 1), [timers.now]);
      assert.equal(reports.length, 2);
      assert.equal(reports[1].upTo, 4);
    });
    it('with the real fs: invalid UTF-8 is kept exactly (base64), the journey file stays valid JSONL', () => {
      const t = tempDir();
      try {
        const timers = new FakeTimers();
        const torn: TornReport[] = [];
        const file = join(t.dir, 'j.jsonl');
        const frag = Buffer.from('{"who":"Zo\u00eb', 'utf8').subarray(0, -1);
        realFs.writeFileSync(file, Buffer.concat([Buffer.from('{"seq":1}\n'), frag]));
        const w = new EgressWriter(
          { pattern: file, count: 2, intervalMs: 1000, fsync: 'batch', utc: true, createDir: false, retryInitialMs: 100, retryMaxMs: 1000 },
          realFs,
          { now: () => timers.now, hrUs: () => timers.now * 1000 },
          { set: timers.set, clear: timers.clear },
          { flushed: () => undefined, error: (e) => assert.fail(String(e)), recovered: () => undefined, torn: (r) => torn.push(r) },
        );
        w.start();
        w.append(2, lines(2, 2), [timers.now, timers.now]);
        assert.equal(realFs.readFileSync(file, 'utf8'), '{"seq":1}\n{"seq":2}\n{"seq":3}\n');
        const rec = JSON.parse(realFs.readFileSync(file + '.torn', 'utf8')) as { base64: string; offset: number };
        assert.deepEqual(Buffer.from(rec.base64, 'base64'), frag);
        assert.equal(rec.offset, 10);
        assert.equal(torn.length, 1);
      } finally {
        t.cleanup();
      }
    });
  });
});
