// Modbus RTU framing: CRC vectors, request encoding, response reading over a
// byte stream (split, joined, noise, wrong unit, bad CRC, exceptions).
import assert from 'node:assert/strict';

import {
  crc16,
  crcOk,
  decodeRequest,
  encodeException,
  encodeRequest,
  encodeResponse,
  exceptionReason,
  inputValue,
  type ReaderEvent,
  ResponseReader,
  withCrc,
} from '../../../nodes/rt-rs485-watch/modbus-core';
import type { Coded } from '../../../nodes/shared/coded';
import { en } from '../../helpers/catalog';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const results = (evs: ReaderEvent[]): string[] => evs.map((e) => e.result);

describe('rt-rs485 modbus-core', () => {
  describe('CRC-16/MODBUS', () => {
    it('matches the catalogue check value and known frames', () => {
      assert.equal(crc16(Buffer.from('123456789')), 0x4b37);
      // 01 03 00 00 00 01 -> CRC 84 0A (low byte first)
      assert.equal(hex(withCrc(Uint8Array.of(1, 3, 0, 0, 0, 1))), '010300000001840a');
      // 01 02 00 00 00 01 -> CRC B9 CA
      assert.equal(hex(withCrc(Uint8Array.of(1, 2, 0, 0, 0, 1))), '010200000001b9ca');
      // 11 03 00 6B 00 03 -> CRC 76 87 (the Modbus spec's example)
      assert.equal(hex(withCrc(Uint8Array.of(0x11, 0x03, 0x00, 0x6b, 0x00, 0x03))), '1103006b00037687');
      assert.equal(crc16(new Uint8Array(0)), 0xffff);
    });

    it('crcOk accepts a valid frame and rejects any single flipped bit', () => {
      const f = withCrc(Uint8Array.of(1, 2, 1, 1));
      assert.ok(crcOk(f, 0, f.length));
      for (let i = 0; i < f.length * 8; i++) {
        const g = Buffer.from(f);
        g[i >> 3] ^= 1 << (i & 7);
        assert.equal(crcOk(g, 0, g.length), false, `bit ${i}`);
      }
    });
  });

  describe('requests', () => {
    it('encodes 0x02 and 0x03 reads with big-endian address and count', () => {
      assert.equal(hex(encodeRequest({ unit: 1, fn: 2, address: 0, count: 1 })), '010200000001b9ca');
      assert.equal(hex(encodeRequest({ unit: 0x11, fn: 3, address: 0x6b, count: 3 })), '1103006b00037687');
      const r = encodeRequest({ unit: 7, fn: 3, address: 0x1234, count: 2 });
      assert.deepEqual([...r.subarray(0, 6)], [7, 3, 0x12, 0x34, 0, 2]);
      assert.deepEqual(decodeRequest(r), { unit: 7, fn: 3, address: 0x1234, count: 2, length: 8 });
    });

    it('rejects out-of-range requests', () => {
      assert.throws(() => encodeRequest({ unit: 0, fn: 2, address: 0, count: 1 }), /unit/);
      assert.throws(() => encodeRequest({ unit: 248, fn: 2, address: 0, count: 1 }), /unit/);
      assert.throws(() => encodeRequest({ unit: 1, fn: 4 as 2, address: 0, count: 1 }), /function/);
      assert.throws(() => encodeRequest({ unit: 1, fn: 3, address: 70000, count: 1 }), /address/);
      assert.throws(() => encodeRequest({ unit: 1, fn: 3, address: 0, count: 126 }), /count/);
    });
  });

  describe('response reader', () => {
    const req2 = { unit: 1, fn: 2 as const, address: 0, count: 1 };
    const req3 = { unit: 5, fn: 3 as const, address: 10, count: 1 };
    const ok2 = (v: number, unit = 1): Buffer => encodeResponse(unit, 2, Uint8Array.of(v));
    const ok3 = (v: number, unit = 5): Buffer => encodeResponse(unit, 3, Uint8Array.of(v >> 8, v & 0xff));

    it('reads a normal 0x02 and 0x03 response', () => {
      const r = new ResponseReader(req2);
      const evs = r.push(ok2(1));
      assert.deepEqual(results(evs), ['ok']);
      assert.ok(r.done);
      assert.equal(inputValue(2, (evs[0] as { data: Buffer }).data), 1);
      const r3 = new ResponseReader(req3);
      const e3 = r3.push(ok3(0x0102));
      assert.deepEqual(results(e3), ['ok']);
      assert.equal(inputValue(3, (e3[0] as { data: Buffer }).data), 0x0102);
    });

    it('reassembles a frame split across reads, byte by byte', () => {
      const r = new ResponseReader(req3);
      const f = ok3(42);
      const evs: ReaderEvent[] = [];
      for (let i = 0; i < f.length; i++) {
        evs.push(...r.push(f.subarray(i, i + 1)));
        assert.equal(r.done, i === f.length - 1, `done after byte ${i}`);
      }
      assert.deepEqual(results(evs), ['ok']);
    });

    it('joined frames: another unit then ours in one read -> wrong_unit then ok', () => {
      const r = new ResponseReader(req2);
      const evs = r.push(Buffer.concat([ok2(0, 2), ok2(1)]));
      assert.deepEqual(results(evs), ['wrong_unit', 'ok']);
      assert.equal((evs[0] as { unit: number }).unit, 2);
      assert.equal(inputValue(2, (evs[1] as { data: Buffer }).data), 1);
    });

    it('joined frames: bytes after our answer stay unread (not parsed into this transaction)', () => {
      const r = new ResponseReader(req2);
      const evs = r.push(Buffer.concat([ok2(1), ok2(0)]));
      assert.deepEqual(results(evs), ['ok']);
      assert.equal(inputValue(2, (evs[0] as { data: Buffer }).data), 1);
      assert.deepEqual(r.push(ok2(0)), [], 'a finished reader ignores more bytes');
    });

    it('resyncs after garbage within one frame and counts the garbage once', () => {
      const r = new ResponseReader(req2);
      const noise = Buffer.from([0x00, 0xff, 0x01, 0x02, 0x13, 0x01]); // includes a fake header 01 02
      const evs = r.push(Buffer.concat([noise, ok2(1)]));
      assert.deepEqual(results(evs), ['garbage', 'ok']);
      assert.equal((evs[0] as { bytes: number }).bytes, noise.length);
    });

    it('garbage split across reads before a split frame', () => {
      const r = new ResponseReader(req2);
      const all = Buffer.concat([Buffer.from([0xaa, 0x01]), ok2(0)]);
      const evs = [...r.push(all.subarray(0, 3)), ...r.push(all.subarray(3, 5)), ...r.push(all.subarray(5))];
      assert.deepEqual(results(evs).filter((x) => x !== 'garbage'), ['ok']);
      const g = evs.filter((e) => e.result === 'garbage').reduce((s, e) => s + (e as { bytes: number }).bytes, 0);
      assert.equal(g, 2);
    });

    it('bad CRC as the last thing received ends the transaction as bad_crc', () => {
      const r = new ResponseReader(req2);
      const f = ok2(1);
      f[f.length - 1] ^= 0xff;
      assert.deepEqual(results(r.push(f)), ['bad_crc']);
      assert.ok(r.done);
    });

    it('a bad frame followed by a good one: the good one wins', () => {
      const r = new ResponseReader(req2);
      const bad = ok2(0);
      bad[3] ^= 0xff;
      const evs = r.push(Buffer.concat([bad, ok2(1)]));
      assert.deepEqual(results(evs), ['garbage', 'ok']);
      assert.equal(inputValue(2, (evs[1] as { data: Buffer }).data), 1);
    });

    it('exception responses carry the code and a reason', () => {
      const r = new ResponseReader(req3);
      const evs = r.push(encodeException(5, 3, 2));
      assert.deepEqual(results(evs), ['exception']);
      assert.equal((evs[0] as { code: number }).code, 2);
      const reason = (evs[0] as { reason: Coded }).reason;
      assert.deepEqual(reason, { code: 'modbus-exception', params: { exception: 2, name: { code: 'exc-illegal-data-address' } } });
      assert.match(en('rt-rs485-watch', reason), /exception 2 \(illegal data address\)/);
      assert.equal(en('rt-rs485-watch', exceptionReason(99)), 'exception 99 (unknown)');
      assert.ok(r.done);
    });

    it('wrong unit alone does not end the transaction; timeout classifies leftovers', () => {
      const r = new ResponseReader(req2);
      assert.deepEqual(results(r.push(ok2(1, 9))), ['wrong_unit']);
      assert.equal(r.done, false);
      r.push(Buffer.from([0x01, 0x02]));
      assert.deepEqual(r.timeout(), [{ result: 'garbage', bytes: 2 }]);
      assert.ok(r.done);
      assert.deepEqual(new ResponseReader(req2).timeout(), []);
    });

    it('an answer with the wrong byte count is not taken as ours', () => {
      const r = new ResponseReader(req3);
      const wrongCount = encodeResponse(5, 3, Uint8Array.of(0, 1, 0, 2));
      const evs = r.push(wrongCount);
      assert.ok(!results(evs).includes('ok'));
      assert.equal(r.done, false);
    });

    it('finds the frame after random noise (no unit-1 byte in it) with the right value', () => {
      let seed = 7;
      const rnd = (): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const b = seed >> 16 & 0xff;
        return b === 1 ? 0 : b;
      };
      for (let k = 0; k < 300; k++) {
        const r = new ResponseReader(req2);
        const noise = Buffer.from(Array.from({ length: 1 + (k % 40) }, rnd));
        const all = Buffer.concat([noise, ok2(k & 1)]);
        const cut = k % all.length;
        const evs = [...r.push(all.subarray(0, cut)), ...r.push(all.subarray(cut))];
        const ok = evs.find((e) => e.result === 'ok') as { data: Buffer } | undefined;
        assert.ok(ok, `case ${k}: ${JSON.stringify(evs)}`);
        assert.equal(inputValue(2, ok.data), k & 1);
      }
    });
  });
});
