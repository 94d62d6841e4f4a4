// The door watch value, register mapping, the stall cap, and config migration.
import assert from 'node:assert/strict';

import { readPortConfig, wireMs } from '../../../nodes/rt-rs485-port/port-config';
import { readWatchConfig } from '../../../nodes/rt-rs485-watch/watch-config';
import { DoorWatch, mapValue, StallGuard } from '../../../nodes/rt-rs485-watch/watch-core';
import { en } from '../../helpers/catalog';

const text = (m: Parameters<typeof en>[1] | null | undefined): string => (m == null ? String(m) : en('rt-rs485-watch', m));

describe('rt-rs485 watch-core', () => {
  it('every change is reported, in order; the same state only moves ts', () => {
    const w = new DoorWatch(0);
    assert.deepEqual(w.value, { state: 'unknown', since: 0, ts: 0, reason: { code: 'not-read' } });
    assert.equal(text(w.value.reason), 'not read yet');
    assert.deepEqual(w.observe('open', 10), { state: 'open', since: 10, ts: 10 });
    assert.equal(w.observe('open', 20), null);
    assert.deepEqual(w.value, { state: 'open', since: 10, ts: 20 });
    const seq = ['closed', 'open', 'closed', 'closed', 'open'] as const;
    const out = seq.map((s, i) => w.observe(s, 30 + i)?.state ?? null);
    assert.deepEqual(out, ['closed', 'open', 'closed', null, 'open']);
    assert.equal(w.changes, 5);
    assert.deepEqual(w.observe('unknown', 40, 'timeout'), { state: 'unknown', since: 40, ts: 40, reason: 'timeout' });
    assert.equal(w.observe('unknown', 41, 'bad CRC'), null, 'a new reason is not a change');
    assert.deepEqual(w.value, { state: 'unknown', since: 40, ts: 41, reason: 'bad CRC' });
    assert.equal(w.observe('open', 50)?.reason, undefined);
  });

  it('maps register values', () => {
    assert.deepEqual(mapValue(1, { openValue: 1, closedValue: 0 }), { state: 'open' });
    assert.deepEqual(mapValue(0, { openValue: 1, closedValue: 0 }), { state: 'closed' });
    assert.deepEqual(mapValue(7, { openValue: 1, closedValue: 0 }), { state: 'unknown', reason: { code: 'unexpected-value', params: { value: 7 } } });
    assert.equal(text(mapValue(7, { openValue: 1, closedValue: 0 }).reason), 'unexpected value 7');
  });

  it('stall guard: one lost reply does not flap; a stretch of failures caps at stallMs', () => {
    const g = new StallGuard(500);
    assert.equal(g.dueIn(0), -1);
    assert.equal(g.sent(0), true);
    g.good();
    assert.equal(g.sent(20), true);
    assert.equal(g.bad(120, 'timeout'), null);
    assert.equal(g.sent(140), false, 'the stretch is already running');
    assert.equal(g.dueIn(140), 380);
    assert.equal(g.check(519), null);
    assert.equal(g.check(520), 'timeout');
    assert.equal(g.bad(600, 'bad CRC'), 'bad CRC');
    g.good();
    assert.equal(g.check(10_000), null);
    const g2 = new StallGuard(500);
    g2.sent(0);
    assert.deepEqual(g2.check(500), { code: 'no-answer-for', params: { ms: 500 } });
    assert.equal(text(g2.check(500)), 'no answer for 500 ms');
  });

  it('watch config: defaults by migration, clamps, stall cap <= 500 ms, problems listed', () => {
    const c = readWatchConfig({ id: 'w', type: 'rt-rs485-watch' });
    assert.equal(c.mode, 'poll');
    assert.equal(c.key, 'door');
    assert.equal(c.fn, 2);
    assert.equal(c.intervalMs, 100);
    assert.equal(c.stallMs, 500);
    assert.equal(c.timeoutMs, 100);
    assert.deepEqual([...c.framer.delimiter], [10]);
    assert.deepEqual(c.problems, []);
    const d = readWatchConfig({ id: 'w', type: 'rt-rs485-watch', version: 1, stall: 5000, timeout: 2000, unit: 0, fn: 3, openValue: 5, closedValue: 5 });
    // out of range is refused (as the editor flags it), never silently clamped
    assert.deepEqual(
      d.problems.map((x) => `${x.code} ${String(x.params?.field)}`),
      ['out-of-range-whole unit', 'out-of-range stall', 'out-of-range timeout', 'same-values undefined'],
    );
    assert.deepEqual(d.problems.slice(0, 3).map(text), ['unit must be a whole number in [1, 247]', 'stall must be a number in [20, 500]', 'timeout must be a number in [5, 500]']);
    const s = readWatchConfig({ id: 'w', type: 'rt-rs485-watch', version: 1, stall: 300, timeout: 400 });
    assert.equal(s.stallMs, 300);
    assert.equal(s.timeoutMs, 300, 'a read attempt never outlasts the stall cap');
    const p = readWatchConfig({ id: 'w', type: 'rt-rs485-watch', mode: 'passive', openMatch: '(' });
    assert.deepEqual(
      p.problems.map((x) => x.code),
      ['bad-pattern'],
    );
    assert.match(p.problems.map(text).join(), /frame pattern/);
    const inv = readWatchConfig({ id: 'w', type: 'rt-rs485-watch', fn: 2, openValue: 0 });
    assert.equal(inv.closedValue, 1, 'for discrete inputs closed is the other bit');
  });

  it('port config: defaults, validation and time on the wire', () => {
    const c = readPortConfig({ id: 'p', type: 'rt-rs485-port', path: ' /dev/ttyUSB0 ' });
    assert.equal(c.path, '/dev/ttyUSB0');
    assert.equal(c.baudRate, 9600);
    assert.equal(c.parity, 'none');
    assert.equal(c.stopBits, 1);
    assert.deepEqual(c.problems, []);
    assert.deepEqual(readPortConfig({ id: 'p', type: 'rt-rs485-port' }).problems, [{ code: 'path-empty' }]);
    assert.match(en('rt-rs485-port', readPortConfig({ id: 'p', type: 'rt-rs485-port' }).problems[0]), /path/);
    const e = readPortConfig({ id: 'p', type: 'rt-rs485-port', path: 'x', parity: 'even', stopBits: '2', backoffMin: 900, backoffMax: 100 });
    assert.equal(e.parity, 'even');
    assert.equal(e.stopBits, 2);
    assert.equal(e.backoffMaxMs, 900);
    // 8 bytes at 9600 8N1 = 80 bits = 8.33 ms
    assert.ok(Math.abs(wireMs(8, c) - 8.333) < 0.01);
  });
});
