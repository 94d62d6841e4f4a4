// Coded messages: core modules report a code and parameters, the node adapters
// word them from their catalog (<type>.codes.<code>). Checks the error class,
// the thread boundary, the adapter helper, that every code a core can produce
// has its text in the catalogs of the nodes that show it, and that Node-RED's
// own i18n renders them to the English texts the nodes showed before codes.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { DOSING_PROBLEMS, readDosing } from '../../../nodes/rt-dosing/dosing-config';
import { DOSE_START_CODES } from '../../../nodes/rt-dosing/dosing-core';
import { DOSING_WORKER_CODES } from '../../../nodes/rt-dosing/dosing-protocol';
import { GATE_INPUT_CODES } from '../../../nodes/rt-gate-command/gate-core';
import { GATE_LINK_CODES } from '../../../nodes/rt-gate-command/gate-link';
import { ENDPOINT_PROBLEMS } from '../../../nodes/rt-gate-endpoint/endpoint-config';
import { EGRESS_INPUT_CODES, PATH_PROBLEMS } from '../../../nodes/rt-journey-egress/egress-core';
import { ALERT_CODES, parseRules, RULE_PROBLEMS } from '../../../nodes/rt-perf-monitor/rules-core';
import { PORT_PROBLEMS } from '../../../nodes/rt-rs485-port/port-config';
import { LINK_CODES } from '../../../nodes/rt-rs485-port/port-link';
import { MODBUS_EXCEPTION_CODES } from '../../../nodes/rt-rs485-watch/modbus-core';
import { WATCH_PROBLEMS } from '../../../nodes/rt-rs485-watch/watch-config';
import { WATCH_REASONS } from '../../../nodes/rt-rs485-watch/watch-core';
import { GPIOCDEV_CODES } from '../../../nodes/rt-scale/gpiocdev-addon';
import { GPIOCDEV_PIN_CODES } from '../../../nodes/rt-scale/hal-gpiocdev';
import { PIGPIO_CODES, PIGPIO_PIN_CODES } from '../../../nodes/rt-scale/hal-pigpio';
import { PWM_CODES } from '../../../nodes/rt-scale/kernel-pwm';
import { readScale, SCALE_PROBLEMS } from '../../../nodes/rt-scale/scale-config';
import { CALIBRATION_CODES } from '../../../nodes/rt-scale/sampler-core';
import { ENGINE_CODES } from '../../../nodes/rt-scale/scale-engine';
import { HOLD_CODES } from '../../../nodes/rt-scale/scale-consumer';
import { SCALE_WORKER_CODES } from '../../../nodes/rt-scale/scale-protocol';
import { type Coded, coded, CodedError, isCoded, isCodedError, type Msg } from '../../../nodes/shared/coded';
import { coreText } from '../../../nodes/shared/i18n';
import { LIMIT_CODES } from '../../../nodes/shared/limits';
import { fromWireError, toWireError } from '../../../nodes/shared/protocol';
import { KEPT_WORKER_CODES, WORKER_CODES } from '../../../nodes/shared/worker-host';
import { catalog, codeText, en } from '../../helpers/catalog';
import { repoRoot } from '../../helpers/util';

/** The codes each node words, by the core modules they come from. */
const CODES_BY_NODE: Record<string, ReadonlyArray<readonly string[]>> = {
  'rt-gate-command': [GATE_INPUT_CODES, GATE_LINK_CODES, ENDPOINT_PROBLEMS, WORKER_CODES],
  'rt-journey-egress': [EGRESS_INPUT_CODES, PATH_PROBLEMS, WORKER_CODES, LIMIT_CODES],
  'rt-scale': [SCALE_PROBLEMS, PIGPIO_CODES, PIGPIO_PIN_CODES, GPIOCDEV_CODES, GPIOCDEV_PIN_CODES, PWM_CODES, CALIBRATION_CODES, ENGINE_CODES, SCALE_WORKER_CODES, HOLD_CODES, WORKER_CODES, KEPT_WORKER_CODES],
  // the dose runner answers on the dosing node's own lease: its codes are worded from rt-dosing's catalog
  'rt-dosing': [DOSING_PROBLEMS, DOSE_START_CODES, HOLD_CODES, DOSING_WORKER_CODES, WORKER_CODES],
  'rt-rs485-port': [PORT_PROBLEMS, LINK_CODES],
  'rt-rs485-watch': [WATCH_REASONS, MODBUS_EXCEPTION_CODES, LINK_CODES, WATCH_PROBLEMS],
  'rt-perf-monitor': [RULE_PROBLEMS, ALERT_CODES, LIMIT_CODES],
  'rt-gate-endpoint': [LIMIT_CODES],
  'rt-hx711': [LIMIT_CODES],
};

describe('coded messages', () => {
  it('CodedError: a code, parameters and a language-neutral message', () => {
    const e = new CodedError('ack-timeout', { ms: 100 });
    assert.equal(e.code, 'ack-timeout');
    assert.deepEqual(e.params, { ms: 100 });
    assert.equal(e.message, 'ack-timeout {"ms":100}');
    assert.equal(new CodedError('no-gate').message, 'no-gate');
    assert.ok(isCodedError(e));
    assert.ok(!isCodedError(Object.assign(new Error('x'), { code: 'ENOENT' })), 'a system error has a code but no params');
    assert.ok(isCoded(coded('x')) && !isCoded(e) && !isCoded('x'));
  });

  it('crosses the thread boundary with its code and parameters (nested ones too); system errors keep their code and text', () => {
    const e = new CodedError('pigpio-gpio', { dout: 5, sck: 6, motor: 18, error: 'busy' });
    const back = fromWireError(structuredClone(toWireError(e))) as CodedError;
    assert.ok(isCodedError(back));
    assert.equal(back.code, 'pigpio-gpio');
    assert.deepEqual(back.params, { dout: 5, sck: 6, motor: 18, error: 'busy' });
    const nested = fromWireError(structuredClone(toWireError(new CodedError('x', { reason: coded('conn-closed') })))) as CodedError;
    assert.deepEqual(nested.params, { reason: { code: 'conn-closed' } });
    const sys = fromWireError(structuredClone(toWireError(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })))) as NodeJS.ErrnoException;
    assert.ok(!isCodedError(sys));
    assert.equal(sys.code, 'EACCES');
    assert.equal(sys.message, 'EACCES: permission denied');
  });

  it('coreText: words codes from <type>.codes.<code>, nested parameters first; errors keep name and code for the Catch node', () => {
    const seen: Array<[string, unknown]> = [];
    const RED = {
      _: (key: string, subs?: Record<string, unknown>): string => {
        seen.push([key, subs]);
        return `${key.split('.').pop()}(${Object.entries(subs ?? {})
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(',')})`;
      },
    };
    const t = coreText(RED, 'rt-x');
    assert.equal(t.text('verbatim text'), 'verbatim text');
    assert.equal(t.text(coded('lost-before-ack', { reason: coded('conn-closed') })), 'lost-before-ack(reason=conn-closed())');
    assert.deepEqual(seen[0], ['rt-x.codes.conn-closed', {}]);
    assert.deepEqual(seen[1], ['rt-x.codes.lost-before-ack', { reason: 'conn-closed()' }]);
    class InputError extends CodedError {
      constructor() {
        super('no-gate');
        this.name = 'InputError';
      }
    }
    const src = new InputError();
    const out = t.error(src) as Error & { code: string };
    assert.equal(out.message, 'no-gate()');
    assert.equal(out.name, 'InputError');
    assert.equal(out.code, 'no-gate');
    assert.ok(Object.prototype.hasOwnProperty.call(out, 'code'), 'an own property: Node-RED copies it to msg.error.code');
    assert.match(String(out.stack), /^InputError: no-gate\(\)\n\s+at /);
    // A plain CodedError (as rebuilt from a worker's wire error) reads as an Error, not "CodedError: ..."
    const plain = t.error(new CodedError('no-gate'));
    assert.equal(plain.name, 'Error');
    assert.equal(String(plain), 'Error: no-gate()');
    const sys = new Error('disk full');
    assert.equal(t.error(sys), sys, 'other errors pass unchanged');
    assert.equal(t.errorText(sys), 'disk full');
    assert.equal(t.errorText(src), 'no-gate()');
  });

  it('every code a core can produce has its text in the catalog of each node that shows it, and no catalog text is left unused', () => {
    for (const [type, lists] of Object.entries(CODES_BY_NODE)) {
      const codes = new Set(lists.flat());
      for (const code of codes) assert.equal(typeof codeText(type, code), 'string', `${type}: missing catalog key ${type}.codes.${code}`);
      const extra = Object.keys((catalog(type).codes as Record<string, unknown>) ?? {}).filter((k) => !codes.has(k));
      assert.deepEqual(extra, [], `${type}: catalog texts no core produces`);
      for (const code of codes) assert.match(code, /^[a-z0-9]+(-[a-z0-9]+)*$/, `${type}: code ${code} is kebab-case`);
    }
  });

  it('the pigpio errors tell the user to pick the simulated backend', () => {
    for (const code of PIGPIO_CODES) assert.match(String(codeText('rt-scale', code)), /pick the "simulated" backend/, code);
  });

  it('config problems are codes: rt-scale and rt-dosing', () => {
    const s = readScale({ id: 's', type: 'rt-scale', backend: 'gpio', doutPin: 30, sckPin: 6, motorPin: 6, rate: 20, capacityG: 0 });
    assert.deepEqual(
      s.problems.map((p) => p.code),
      ['bad-backend', 'bad-dout-pin', 'same-pins', 'bad-rate', 'bad-capacity'],
    );
    assert.equal(en('rt-scale', s.problems[0]), 'unknown backend "gpio" (simulated, pigpio or gpiocdev)');
    assert.equal(en('rt-scale', s.problems[1]), 'DOUT pin must be a BCM GPIO number 0-27');
    const d = readDosing({ id: 'd', type: 'rt-dosing', coarsePct: 50, finePct: 60, toleranceG: 0 }, 500_000);
    assert.deepEqual(
      d.problems.map((p) => p.code),
      ['fine-above-coarse', 'bad-tolerance'],
    );
    assert.equal(d.problems.map((p) => en('rt-dosing', p)).join('; '), 'fine speed must not exceed coarse speed; tolerance must be a positive number of grams');
  });

  it('rule problems nest the problem in `rule` {n}', () => {
    const r = parseRules('[{"metric": "eventloop.delay", "threshold": -5}, {"metric": "cpu", "threshold": 1}]', 10);
    assert.deepEqual(r.problems[0], { code: 'rule', params: { n: 1, problem: { code: 'rule-bad-threshold' } } });
    assert.equal(r.problems[1].code, 'rule');
    assert.deepEqual((r.problems[1].params!.problem as Coded).params, { metric: 'cpu', known: 'eventloop.delay, node.latency, eventloop.utilization, memory.rss, memory.rssGrowth, memory.heapUsed, memory.heapTotal, memory.external' });
  });

  describe("with Node-RED's i18n", () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { i18n } = require('@node-red/util') as {
      i18n: {
        init(s: object): Promise<void>;
        registerMessageCatalog(ns: string, dir: string, file: string): Promise<void>;
        _(key: string, subs?: object): string;
      };
    };
    const NS = 'coded-test';
    before(async () => {
      await i18n.init({});
      for (const type of Object.keys(CODES_BY_NODE)) await i18n.registerMessageCatalog(`${NS}/${type}`, join(repoRoot, 'nodes', type, 'locales'), `${type}.json`);
    });
    /** What a node's RED._ does: the key in its own namespace. */
    const text = (type: string, m: Msg): string => coreText({ _: (key, subs) => i18n._(`${NS}/${type}:${key}`, subs) }, type).text(m);

    it('renders the English texts the nodes showed before the codes', () => {
      const KNOWN = 'eventloop.delay, node.latency, eventloop.utilization, memory.rss, memory.rssGrowth, memory.heapUsed, memory.heapTotal, memory.external';
      const cases: Array<[string, Coded, string]> = [
        ['rt-gate-command', coded('no-gate'), 'msg.payload.gate (or msg.gate) must be a gate id: a non-empty string or a number'],
        ['rt-gate-command', coded('missing-field', { name: 'track_id' }), 'the command template needs {track_id}, which the message does not have'],
        ['rt-gate-command', coded('oversize', { bytes: 1030, max: 1024 }), 'the command is 1030 bytes, more than the 1024 allowed'],
        ['rt-gate-command', coded('lost-before-ack', { reason: coded('conn-closed') }), 'connection closed by the controller before the acknowledgement'],
        ['rt-gate-command', coded('ack-timeout', { ms: 5000 }), 'no acknowledgement within 5000 ms'],
        ['rt-gate-command', coded('bad-ack', { error: 'Invalid regular expression: /(/: Unterminated group' }), 'acknowledgement pattern: Invalid regular expression: /(/: Unterminated group'],
        ['rt-gate-command', coded('template-no-gate'), 'the template should contain {gate}'],
        ['rt-gate-command', coded('worker-exited', { key: 'rt-gate-command:e1', exitCode: 1 }), 'worker rt-gate-command:e1 exited unexpectedly with code 1'],
        ['rt-journey-egress', coded('not-object', { what: coded('an-array') }), 'payload must be an object, got an array'],
        ['rt-journey-egress', coded('not-object', { what: 'string' }), 'payload must be an object, got string'],
        ['rt-journey-egress', coded('path-bad-field'), 'path has an unknown % field (use %Y %m %d %H %%)'],
        ['rt-journey-egress', coded('worker-timeout', { ms: 5000 }), 'worker request timed out after 5000 ms'],
        ['rt-scale', coded('pigpio-missing', { error: "Cannot find module 'pigpio'" }), `the pigpio backend is not available (Cannot find module 'pigpio'). Install pigpio on a Raspberry Pi (see the README) or pick the "simulated" backend`],
        ['rt-scale', coded('pigpio-gpio', { dout: 5, sck: 6, motor: 18, error: 'busy' }), 'pigpio could not open GPIO 5/6/18 (busy); or pick the "simulated" backend'],
        ['rt-scale', coded('cal-no-change'), 'the calibration weight is not seen by the load cell (no change from zero)'],
        ['rt-dosing', coded('beyond-never-exceed', { cg: 500_000, limit: 500_000 }), 'target is beyond the never-exceed weight'],
        ['rt-dosing', coded('bad-coarse'), 'coarse speed must be 1-100 %'],
        ['rt-rs485-port', coded('path-empty'), 'serial port path is empty'],
        ['rt-rs485-watch', coded('port-unavailable', { error: coded('port-closed') }), 'port unavailable: port closed'],
        ['rt-rs485-watch', coded('port-unavailable', { error: 'Error: No such file or directory, cannot open /dev/ttyX' }), 'port unavailable: Error: No such file or directory, cannot open /dev/ttyX'],
        ['rt-rs485-watch', coded('port-unavailable', { error: coded('unknown-error') }), 'port unavailable: unknown error'],
        ['rt-rs485-watch', coded('modbus-exception', { exception: 2, name: coded('exc-illegal-data-address') }), 'exception 2 (illegal data address)'],
        ['rt-rs485-watch', coded('port-state-error', { state: 'down', error: 'Disconnected' }), 'port down: Disconnected'],
        ['rt-rs485-watch', coded('no-answer-within', { ms: 100 }), 'no answer within 100 ms'],
        ['rt-rs485-watch', coded('not-read'), 'not read yet'],
        ['rt-perf-monitor', coded('rule', { n: 2, problem: coded('rule-unknown-metric', { metric: 'cpu', known: KNOWN }) }), `rule 2: unknown metric "cpu" (use ${KNOWN} or an rtedge_..._seconds histogram)`],
        ['rt-perf-monitor', coded('rule', { n: 1, problem: coded('rule-bad-category') }), 'rule 1: category must be a word of at most 32 letters, digits, _ . -'],
        ['rt-perf-monitor', coded('rule', { n: 1, problem: coded('rule-unknown-field', { field: 'treshold' }) }), 'rule 1: unknown field "treshold"'],
        ['rt-perf-monitor', coded('rules-bad-json', { error: 'Unexpected token' }), 'rules are not valid JSON (Unexpected token)'],
        ['rt-perf-monitor', coded('alert-firing', { name: 'node.latency p99 (busy)', value: 25.3, unit: 'ms', threshold: 10 }), 'node.latency p99 (busy) above threshold: 25.3 ms > 10 ms'],
        ['rt-perf-monitor', coded('alert-resolved', { name: 'memory.rss', value: 89, unit: 'MB', threshold: 100 }), 'memory.rss back below threshold: 89 MB <= 100 MB'],
      ];
      for (const [type, m, want] of cases) {
        assert.equal(text(type, m), want, `${type} ${m.code}`);
        assert.equal(en(type, m), want, `test/helpers/catalog.ts agrees (${type} ${m.code})`);
      }
    });

    it('every catalog text renders: no placeholder left, no key shown', () => {
      for (const [type, lists] of Object.entries(CODES_BY_NODE)) {
        for (const code of new Set(lists.flat())) {
          const params: Record<string, string> = {};
          for (const m of String(codeText(type, code)).matchAll(/__([A-Za-z0-9]+)__/g)) params[m[1]] = `<${m[1]}>`;
          const out = text(type, coded(code, params));
          assert.doesNotMatch(out, /__[A-Za-z0-9]+__/, `${type}.codes.${code}: ${out}`);
          assert.notEqual(out, `${type}.codes.${code}`, `${type}.codes.${code} not found by i18n`);
        }
      }
    });
  });
});
