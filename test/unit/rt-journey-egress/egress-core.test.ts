import assert from 'node:assert/strict';

import { readConfig } from '../../../nodes/rt-journey-egress/egress-config';
import { checkPattern, EgressInputError, encodeLine, FlushScheduler, formatPath, Ledger, tornRecord } from '../../../nodes/rt-journey-egress/egress-core';
import { en } from '../../helpers/catalog';

const text = (m: Parameters<typeof en>[1] | null): string => (m === null ? 'null' : en('rt-journey-egress', m));

describe('egress-core', () => {
  describe('encodeLine', () => {
    it('encodes a plain object as one line of JSON', () => {
      const line = encodeLine({ a: 1, s: 'x\ny', n: null, nested: { b: [1, 2] } });
      assert.equal(line, '{"a":1,"s":"x\\ny","n":null,"nested":{"b":[1,2]}}');
      assert.ok(!line.includes('\n'));
      assert.deepEqual(JSON.parse(line), { a: 1, s: 'x\ny', n: null, nested: { b: [1, 2] } });
    });
    it('accepts null-prototype objects', () => {
      const o = Object.create(null) as Record<string, unknown>;
      o.k = 1;
      assert.equal(encodeLine(o), '{"k":1}');
    });
    for (const [what, v] of [
      ['a string', 'journey'],
      ['a number', 3],
      ['null', null],
      ['undefined', undefined],
      ['an array', [1, 2]],
      ['a Buffer', Buffer.from('x')],
      ['a Date', new Date()],
    ] as Array<[string, unknown]>) {
      it(`rejects ${what}`, () => {
        assert.throws(() => encodeLine(v), (e: unknown) => e instanceof EgressInputError && e.code === 'not-object');
      });
    }
    it('rejects circular structures with a clear message', () => {
      const o: Record<string, unknown> = { a: 1 };
      o.self = o;
      assert.throws(() => encodeLine(o), (e: unknown) => e instanceof EgressInputError && e.code === 'circular' && /circular/.test(text(e)));
    });
    it('rejects BigInt with a clear message', () => {
      assert.throws(() => encodeLine({ big: 10n }), (e: unknown) => e instanceof EgressInputError && e.code === 'bigint' && /BigInt/.test(text(e)));
    });
    it('reports what the payload was instead of an object, as a code and parameters', () => {
      const got = (v: unknown): EgressInputError => {
        try {
          encodeLine(v);
        } catch (e) {
          return e as EgressInputError;
        }
        throw new Error('no error');
      };
      assert.deepEqual({ ...got('x').params }, { what: 'string' });
      assert.deepEqual({ ...got(null).params }, { what: 'null' });
      assert.deepEqual({ ...got([1]).params }, { what: { code: 'an-array' } });
      assert.equal(text(got([1])), 'payload must be an object, got an array');
      assert.equal(text(got(3)), 'payload must be an object, got number');
      assert.equal(got(3).message, 'not-object {"what":"number"}', 'the message itself is language-neutral');
    });
  });

  describe('formatPath / checkPattern', () => {
    const t = Date.UTC(2026, 0, 5, 7, 8, 9); // 2026-01-05T07:08:09Z
    it('expands date fields in UTC', () => {
      assert.equal(formatPath('/x/j-%Y-%m-%d_%H.jsonl', t, true), '/x/j-2026-01-05_07.jsonl');
      assert.equal(formatPath('/x/100%%-%Y', t, true), '/x/100%-2026');
    });
    it('expands date fields in local time', () => {
      const d = new Date(t);
      const exp = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
      assert.equal(formatPath('%Y-%m-%d', t, false), exp);
    });
    it('leaves a pattern without fields unchanged', () => {
      assert.equal(formatPath('/var/log/j.jsonl', t, true), '/var/log/j.jsonl');
    });
    it('validates patterns', () => {
      assert.equal(checkPattern('a-%Y.jsonl'), null);
      assert.deepEqual(checkPattern(''), { code: 'path-empty' });
      assert.deepEqual(checkPattern('a-%q'), { code: 'path-bad-field' });
      assert.deepEqual(checkPattern('a\0b'), { code: 'path-nul' });
      assert.match(text(checkPattern('')), /empty/);
      assert.match(text(checkPattern('a-%q')), /unknown/);
      assert.match(text(checkPattern('a-%')), /unknown/);
      assert.match(text(checkPattern(42)), /empty/);
    });
  });

  describe('readConfig', () => {
    it('fills v1 defaults, refuses numbers out of their limits (as the editor does) and resolves relative paths', () => {
      const c = readConfig({ id: 'n', type: 'rt-journey-egress', path: 'j/%Y.jsonl', flushCount: '0', flushMs: 'abc', queueLimit: 5 }, '/base');
      assert.equal(c.pattern, '/base/j/%Y.jsonl');
      assert.deepEqual(
        c.problems.map((p) => [p.code, p.params?.field]),
        [
          ['out-of-range-whole', 'flushCount'],
          ['out-of-range', 'flushMs'],
        ],
      );
      assert.equal(c.fsync, 'batch');
      assert.equal(c.queueLimit, 5);
      assert.equal(c.createDir, true);
      assert.equal(c.patternError, null);
      const ok = readConfig({ id: 'n', type: 'rt-journey-egress', path: 'j.jsonl', flushCount: '', flushMs: '250' }, '/base');
      assert.deepEqual([ok.problems, ok.flushCount, ok.flushMs], [[], 10, 250]);
    });
    it('keeps explicit values and reports a bad path without throwing', () => {
      const c = readConfig({ id: 'n', type: 't', version: 1, path: '%x', fsync: 'none', createDir: false }, '/b');
      assert.equal(c.fsync, 'none');
      assert.equal(c.createDir, false);
      assert.match(text(c.patternError), /unknown/);
      assert.equal(c.pattern, '');
    });
  });

  describe('FlushScheduler', () => {
    it('flushes on count or when the oldest line has waited the interval', () => {
      let now = 1000;
      const s = new FlushScheduler({ count: 10, intervalMs: 1000 }, () => now);
      assert.equal(s.added(3), 1000);
      now += 400;
      assert.equal(s.added(5), 600);
      assert.equal(s.due(5), false);
      now += 600;
      assert.equal(s.due(5), true);
      assert.equal(s.added(10), 'now');
      s.flushed();
      now += 5000;
      assert.equal(s.added(1), 1000, 'the interval restarts with the next line');
    });
  });

  describe('Ledger', () => {
    it('keeps order, refuses beyond the limit, acks in order', () => {
      const l = new Ledger<number>(3);
      assert.equal(l.offer('a', 1, 101), 1);
      assert.equal(l.offer('b', 2, 102), 2);
      assert.equal(l.offer('c', 3, 103), 3);
      assert.equal(l.offer('d', 4, 104), 0, 'full');
      assert.equal(l.depth, 3);
      assert.deepEqual(l.takeUnposted(), { seq0: 1, lines: ['a', 'b', 'c'], ts: [1, 2, 3] });
      assert.equal(l.takeUnposted(), null);
      assert.deepEqual(l.ack(2), [101, 102]);
      assert.equal(l.depth, 1);
      assert.equal(l.offer('e', 5, 105), 4);
      assert.deepEqual(l.takeUnposted(), { seq0: 4, lines: ['e'], ts: [5] });
      assert.deepEqual(l.ack(2), [], 'a repeated ack completes nothing twice');
    });
    it('rewind re-posts everything unacknowledged', () => {
      const l = new Ledger<number>(10);
      for (let i = 0; i < 5; i++) l.offer(`l${i}`, i, i);
      l.takeUnposted();
      l.ack(2);
      l.rewind();
      assert.deepEqual(l.takeUnposted(), { seq0: 3, lines: ['l2', 'l3', 'l4'], ts: [2, 3, 4] });
    });
    it('stays correct across compaction of a long stream', () => {
      const l = new Ledger<number>(100000);
      let acked = 0;
      for (let i = 1; i <= 50000; i++) {
        l.offer(`x${i}`, i, i);
        if (i % 7 === 0) {
          l.takeUnposted();
          const d = l.ack(i - 3);
          for (const v of d) assert.equal(v, ++acked);
        }
      }
      const rest = l.drainAll();
      assert.equal(rest.dones[0], acked + 1);
      assert.equal(rest.dones.length, 50000 - acked);
      assert.equal(l.depth, 0);
    });
  });
});

describe('egress-core across realms', () => {
  it('accepts objects made in another vm context (a function node sandbox)', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const vm = require('node:vm') as typeof import('node:vm');
    const o = vm.runInNewContext('({ seq: 1, tags: ["a"] })');
    assert.equal(encodeLine(o), '{"seq":1,"tags":["a"]}');
    assert.throws(() => encodeLine(vm.runInNewContext('[1]')), EgressInputError);
    assert.throws(() => encodeLine(vm.runInNewContext('new Date()')), EgressInputError);
  });
});

describe('egress-core torn tails', () => {
  describe('tornRecord', () => {
    it('is one JSON line with time, file, offset, size and the fragment as text', () => {
      const frag = Buffer.from('{"seq":7,"gate":"G1","who":"Zoë');
      const line = tornRecord(frag, '/j/a.jsonl', 120, Date.UTC(2026, 0, 2, 3, 4, 5));
      assert.ok(!line.includes('\n'));
      assert.deepEqual(JSON.parse(line), { time: '2026-01-02T03:04:05.000Z', file: '/j/a.jsonl', offset: 120, bytes: frag.length, text: '{"seq":7,"gate":"G1","who":"Zoë' });
    });
    it('keeps the exact bytes in base64 when the line was torn inside a multi-byte character', () => {
      const full = Buffer.from('{"who":"Zoë"}');
      const frag = full.subarray(0, full.indexOf(0xc3) + 1);
      const rec = JSON.parse(tornRecord(frag, '/j/a.jsonl', 0, 0)) as { text?: string; base64?: string; bytes: number };
      assert.equal(rec.text, undefined);
      assert.deepEqual(Buffer.from(rec.base64!, 'base64'), frag);
      assert.equal(rec.bytes, frag.length);
    });
  });
});
