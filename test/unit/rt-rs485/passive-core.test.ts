// Passive framing: delimiter and inter-byte timeout, split/joined frames,
// overlong garbage, and the frame -> state mapping.
import assert from 'node:assert/strict';

import { compileMapping, Framer, type FramerEvent, frameText, mapFrame, unescapeBytes } from '../../../nodes/rt-rs485-watch/passive-core';

const texts = (evs: FramerEvent[]): string[] => evs.map((e) => ('frame' in e ? e.frame.toString('latin1') : `<garbage ${e.garbage}>`));

describe('rt-rs485 passive-core', () => {
  it('unescapes delimiters', () => {
    assert.deepEqual([...unescapeBytes('\\r\\n')], [13, 10]);
    assert.deepEqual([...unescapeBytes('\\x03')], [3]);
    assert.deepEqual([...unescapeBytes('|')], [0x7c]);
    assert.deepEqual([...unescapeBytes('\\\\')], [0x5c]);
  });

  describe('delimiter framing', () => {
    const f = (): Framer => new Framer({ mode: 'delimiter', delimiter: Buffer.from('\r\n'), gapMs: 0, maxLength: 16 });

    it('joins a frame split across reads, including a split delimiter', () => {
      const fr = f();
      assert.deepEqual(texts(fr.push(Buffer.from('OP'), 0)), []);
      assert.deepEqual(texts(fr.push(Buffer.from('EN\r'), 1)), []);
      assert.deepEqual(texts(fr.push(Buffer.from('\nCL'), 2)), ['OPEN']);
      assert.equal(fr.pending, 2);
    });

    it('splits several frames in one read, in order, skipping empty ones', () => {
      assert.deepEqual(texts(f().push(Buffer.from('OPEN\r\nCLOSED\r\n\r\nOPEN\r\n'), 0)), ['OPEN', 'CLOSED', 'OPEN']);
    });

    it('drops overlong input as garbage and resyncs at the next delimiter', () => {
      const fr = f();
      const evs = fr.push(Buffer.from('x'.repeat(20)), 0);
      assert.deepEqual(texts(evs), ['<garbage 20>']);
      assert.deepEqual(texts(fr.push(Buffer.from('yyy\r\nOPEN\r\n'), 1)), ['yyy', 'OPEN']);
      assert.deepEqual(texts(f().push(Buffer.from('z'.repeat(17) + '\r\nCLOSED\r\n'), 0)), ['<garbage 17>', 'CLOSED']);
    });
  });

  describe('inter-byte timeout framing', () => {
    const f = (): Framer => new Framer({ mode: 'timeout', delimiter: Buffer.alloc(0), gapMs: 10, maxLength: 8 });

    it('a gap ends a frame; bytes without a gap are one frame', () => {
      const fr = f();
      assert.deepEqual(fr.push(Buffer.from([1, 2]), 0), []);
      assert.deepEqual(fr.push(Buffer.from([3]), 5), []);
      assert.equal(fr.dueIn(6), 9);
      assert.deepEqual(fr.tick(14), []);
      const evs = fr.tick(15);
      assert.deepEqual(evs.map((e) => ('frame' in e ? [...e.frame] : e)), [[1, 2, 3]]);
      assert.equal(fr.dueIn(20), -1);
    });

    it('a byte after the gap cuts the previous frame even if the timer was late', () => {
      const fr = f();
      fr.push(Buffer.from([1]), 0);
      const evs = fr.push(Buffer.from([2]), 30);
      assert.deepEqual(evs.map((e) => ('frame' in e ? [...e.frame] : e)), [[1]]);
      assert.deepEqual(fr.tick(40).map((e) => ('frame' in e ? [...e.frame] : e)), [[2]]);
    });

    it('overlong frames are garbage', () => {
      const fr = f();
      assert.deepEqual(fr.push(Buffer.alloc(9, 7), 0), [{ garbage: 9 }]);
      assert.equal(fr.pending, 0);
    });
  });

  describe('mapping', () => {
    it('maps text frames (trimmed) with open tested first', () => {
      const m = compileMapping('text', '^(OPEN|1)$', '^(CLOSED|0)$');
      assert.equal(mapFrame(Buffer.from(' OPEN\r'), m), 'open');
      assert.equal(mapFrame(Buffer.from('0'), m), 'closed');
      assert.equal(mapFrame(Buffer.from('HELLO'), m), null);
    });

    it('maps binary frames through their hex form', () => {
      const m = compileMapping('hex', '^0101', '^0100');
      assert.equal(frameText(Buffer.from([1, 1, 0xab]), 'hex'), '0101ab');
      assert.equal(mapFrame(Buffer.from([1, 1, 0xab]), m), 'open');
      assert.equal(mapFrame(Buffer.from([1, 0]), m), 'closed');
      assert.equal(mapFrame(Buffer.from([2]), m), null);
    });

    it('a bad pattern throws at compile time', () => {
      assert.throws(() => compileMapping('text', '(', 'x'));
    });
  });
});
