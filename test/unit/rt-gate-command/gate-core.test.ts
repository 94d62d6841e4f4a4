import assert from 'node:assert/strict';

import { ackMatches, checkGate, compileAck, GateInputError, LineSplitter, reconnectDelay, renderCommand, templateFields, unescapeTemplate } from '../../../nodes/rt-gate-command/gate-core';
import { readEndpoint } from '../../../nodes/rt-gate-endpoint/endpoint-config';
import { en } from '../../helpers/catalog';

/** The GateInputError `fn` throws. */
function thrown(fn: () => unknown): GateInputError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof GateInputError, String(e));
    return e;
  }
  throw new Error('no error');
}

describe('gate-core', () => {
  it('renders templates from message fields, with escapes', () => {
    const t = unescapeTemplate('OPEN {gate} T{track_id}\\r\\n');
    assert.equal(t, 'OPEN {gate} T{track_id}\r\n');
    assert.deepEqual(templateFields(t), ['gate', 'track_id']);
    assert.equal(renderCommand(t, { gate: 'G1', track_id: 42 }), 'OPEN G1 T42\r\n');
  });
  it('rejects a missing field, a line break in a value, an oversize command', () => {
    assert.throws(() => renderCommand('OPEN {gate}', {}), (e: unknown) => e instanceof GateInputError && e.code === 'missing-field');
    assert.throws(() => renderCommand('OPEN {gate}', { gate: 'a\r\nOPEN b' }), GateInputError);
    assert.throws(() => renderCommand('OPEN {gate}', { gate: { x: 1 } }), GateInputError);
    assert.throws(() => renderCommand('OPEN {gate}', { gate: 'x'.repeat(2000) }), (e: unknown) => e instanceof GateInputError && e.code === 'oversize');
  });
  it('bad input is a code with parameters; the catalog words it', () => {
    const missing = thrown(() => renderCommand('OPEN {gate} {track_id}', { gate: 'G1' }));
    assert.equal(missing.code, 'missing-field');
    assert.deepEqual(missing.params, { name: 'track_id' });
    assert.equal(en('rt-gate-command', missing), 'the command template needs {track_id}, which the message does not have');
    const br = thrown(() => renderCommand('OPEN {gate}', { gate: 'a\nb' }));
    assert.equal(br.code, 'line-break');
    assert.equal(en('rt-gate-command', br), '{gate} contains a line break');
    const big = thrown(() => renderCommand('OPEN {gate}', { gate: 'x'.repeat(20) }, 10));
    assert.deepEqual([big.code, big.params], ['oversize', { bytes: 25, max: 10 }]);
    assert.equal(en('rt-gate-command', big), 'the command is 25 bytes, more than the 10 allowed');
    const none = thrown(() => checkGate(''));
    assert.equal(none.code, 'no-gate');
    assert.match(en('rt-gate-command', none), /must be a gate id/);
    assert.equal(none.name, 'GateInputError');
    assert.equal(none.message, 'no-gate', 'the message itself is language-neutral');
  });
  it('validates gate ids', () => {
    assert.equal(checkGate('G1'), 'G1');
    assert.equal(checkGate(7), '7');
    for (const bad of [undefined, null, '', '  ', NaN, {}, 'a\nb']) assert.throws(() => checkGate(bad), GateInputError);
  });
  it('splits replies into lines across chunks and CR/LF/CRLF', () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push('OK G'), []);
    assert.deepEqual(s.push('1\r\nOK G2\nOK'), ['OK G1', 'OK G2']);
    assert.deepEqual(s.push(' G3\r'), ['OK G3']);
    const small = new LineSplitter(8);
    assert.deepEqual(small.push('0123456789'), ['0123456789'], 'overlong garbage does not grow forever');
  });
  it('matches acknowledgements with {gate} standing for the gate in flight', () => {
    const ack = compileAck('^OK {gate}$')!;
    assert.equal(ackMatches(ack, 'OK G1', 'G1'), true);
    assert.equal(ackMatches(ack, 'OK G2', 'G1'), false);
    assert.equal(ackMatches(compileAck('^OK')!, 'OK anything', 'G9'), true);
    assert.equal(ackMatches(compileAck('^OK {gate}$')!, 'OK a.b', 'a.b'), true);
    assert.equal(ackMatches(compileAck('^OK {gate}$')!, 'OK axb', 'a.b'), false, 'gate ids are literal');
    assert.equal(compileAck(''), null);
    assert.throws(() => compileAck('('));
  });
  it('reconnect backoff grows, is bounded and jittered', () => {
    assert.equal(reconnectDelay(0, 100, 1000, () => 0.5), 100);
    assert.equal(reconnectDelay(2, 100, 1000, () => 0.5), 400);
    assert.equal(reconnectDelay(9, 100, 1000, () => 0.5), 1000);
    assert.equal(reconnectDelay(0, 100, 1000, () => 0), 80);
  });
  it('endpoint config: defaults, clamping and problems', () => {
    const c = readEndpoint({ id: 'e', type: 'rt-gate-endpoint', host: 'ctl', port: '4001' });
    assert.equal(c.template, 'OPEN {gate}\r\n');
    assert.equal(c.timeoutMs, 5000);
    assert.deepEqual(c.problems, []);
    const bad = readEndpoint({ id: 'e', type: 'rt-gate-endpoint', version: 1, host: '', port: 0, ack: '(', template: 'X' });
    assert.deepEqual(
      bad.problems.map((p) => p.code),
      ['host-empty', 'out-of-range-whole', 'template-no-gate', 'bad-ack'],
    );
    assert.equal(en('rt-gate-command', bad.problems[1]), 'port must be a whole number in [1, 65535]');
    // out of range is refused, never clamped (port 70000 is not port 65535): the editor flags the same values (shared/limits)
    assert.deepEqual(readEndpoint({ id: 'e', type: 'rt-gate-endpoint', host: 'h', port: 70000 }).problems.map((p) => p.code), ['out-of-range-whole']);
    assert.deepEqual(readEndpoint({ id: 'e', type: 'rt-gate-endpoint', host: 'h', port: 4001, timeout: -5 }).problems.map((p) => p.code), ['out-of-range']);
    assert.match(en('rt-gate-command', bad.problems[3]), /^acknowledgement pattern: Invalid regular expression/);
  });
});
