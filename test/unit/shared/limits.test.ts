// One rule set for the editor and the runtime: the `validate` functions of
// every built .html (dist/nodes/<type>/<type>.html, as Node-RED serves it to
// the editor) and the runtime's config readers give the same verdict on the
// boundary values of every limit in nodes/shared/limits.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';

import { readConfig as readPlant } from '../../../nodes/rt-control-plant/plant-config';
import { readDosing } from '../../../nodes/rt-dosing/dosing-config';
import { readEndpoint } from '../../../nodes/rt-gate-endpoint/endpoint-config';
import { readConfig as readEgress } from '../../../nodes/rt-journey-egress/egress-config';
import { readTrackerConfig } from '../../../nodes/rt-journey-tracker/tracker-config';
import { readPortConfig } from '../../../nodes/rt-rs485-port/port-config';
import { readWatchConfig } from '../../../nodes/rt-rs485-watch/watch-config';
import { readBroker } from '../../../nodes/rt-mqtt-broker/broker-config';
import { readIngress } from '../../../nodes/rt-mqtt-ingress/ingress-config';
import { readScale } from '../../../nodes/rt-scale/scale-config';
import { readWsConfig } from '../../../nodes/rt-ws-batcher/ws-config';
import type { Coded } from '../../../nodes/shared/coded';
import { type Limit, LIMITS, limitOk, readLimited } from '../../../nodes/shared/limits';
import { en } from '../../helpers/catalog';
import { repoRoot } from '../../helpers/util';

type Validate = (this: object, v: unknown, opt?: object) => boolean | string;
interface Def {
  defaults: Record<string, { value: unknown; required?: boolean; validate?: Validate }>;
}

/** registerType's definition from the built .html, its scripts run against a stub RED. */
function editorDef(type: string): Def {
  const html = readFileSync(join(repoRoot, 'dist', 'nodes', type, `${type}.html`), 'utf8');
  let def: Def | null = null;
  const RED = { validators: { number: () => () => true }, nodes: { registerType: (_t: string, d: Def) => (def = d) } };
  const ctx = { RED, $: () => ({ val: () => '', on: () => undefined }) };
  for (const m of html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)) runInNewContext(m[1], ctx);
  assert.ok(def, `${type}: registerType ran`);
  return def;
}

/** Boundary values of a limit, as numbers and as the strings an editor input holds. */
function probes(l: Limit): unknown[] {
  const vals = [l.min, l.max, l.min - 1, l.max + 1, l.min + 0.5, l.max - 0.5, l.min - 0.001, l.max + 0.001, (l.min + l.max) / 2, Math.round((l.min + l.max) / 2), -1, 0];
  return [...vals, ...vals.map(String), 'abc', '1e3', ' 7 ', '0x10', 'NaN', 'Infinity'];
}

const hasField = (problems: Coded[], field: string): boolean => problems.some((p) => p.params?.field === field);

/** The runtime's verdict on `v` for type.field: true = accepted as given. */
const runtime: Record<string, (field: string, v: unknown) => boolean> = {
  'rt-gate-endpoint': (f, v) => !hasField(readEndpoint({ id: 'e', type: 'rt-gate-endpoint', host: 'h', port: 4001, [f]: v }).problems, f),
  'rt-rs485-port': (f, v) => !hasField(readPortConfig({ id: 'p', type: 'rt-rs485-port', path: '/dev/x', [f]: v }).problems, f),
  'rt-rs485-watch': (f, v) => !hasField(readWatchConfig({ id: 'w', type: 'rt-rs485-watch', fn: 3, openValue: 1, closedValue: 0, [f]: v }).problems, f),
  'rt-dosing': (f, v) => {
    const codes: Record<string, string> = { coarsePct: 'bad-coarse', finePct: 'bad-fine', fineBandG: 'bad-fine-band', toleranceG: 'bad-tolerance', maxTimeS: 'bad-max-time', neverExceedG: 'bad-never-exceed', noProgressG: 'bad-no-progress', containerDropG: 'bad-container-drop' };
    const base = { coarsePct: 100, finePct: 10, fineBandG: 0, toleranceG: 0.1, maxTimeS: 60, neverExceedG: 0, noProgressG: 0.5, containerDropG: 20, topUps: 0, learnDoses: 9, progressHz: 5 };
    const problems = readDosing({ id: 'd', type: 'rt-dosing', version: 2, ...base, [f]: v }, 500_000).problems;
    return !problems.some((p) => p.code === codes[f] || p.params?.field === f);
  },
  'rt-journey-egress': (f, v) => !hasField(readEgress({ id: 'x', type: 'rt-journey-egress', path: 'a.jsonl', [f]: v }, '/tmp').problems, f),
  'rt-scale': (f, v) => {
    const codes: Record<string, string> = { doutPin: 'bad-dout-pin', sckPin: 'bad-sck-pin', motorPin: 'bad-motor-pin', zero: 'bad-zero', stableG: 'bad-stable', capacityG: 'bad-capacity' };
    const problems = readScale({ id: 's', type: 'rt-scale', doutPin: 5, sckPin: 6, motorPin: 18, [f]: v }).problems;
    return !problems.some((p) => p.code === codes[f] || p.params?.field === f);
  },
  // the adapters of these read their limited fields with readLimited (no separate reader)
  'rt-gate-command': (f, v) => !hasField(collect('rt-gate-command', f, v), f),
  'rt-perf-monitor': (f, v) => !hasField(collect('rt-perf-monitor', f, v), f),
  'rt-hx711': (f, v) => !hasField(collect('rt-hx711', f, v), f),
  'rt-journey-tracker': (f, v) => !hasField(readTrackerConfig({ id: 't', type: 'rt-journey-tracker', version: 1, [f]: v }).problems, f),
  'rt-control-plant': (f, v) => !hasField(readPlant({ id: 'c', type: 'rt-control-plant', [f]: v }).problems, f),
  'rt-ws-batcher': (f, v) => !hasField(readWsConfig({ [f]: v }).problems, f),
  'rt-mqtt-broker': (f, v) => !hasField(readBroker({ id: 'b', type: 'rt-mqtt-broker', [f]: v } as never).problems, f),
  'rt-mqtt-ingress': (f, v) => !hasField(readIngress({ id: 'i', type: 'rt-mqtt-ingress', [f]: v } as never, true).problems, f),
};
function collect(type: keyof typeof LIMITS, field: string, v: unknown): Coded[] {
  const problems: Coded[] = [];
  readLimited(type, field as never, v, 0, problems);
  return problems;
}

describe('shared limits: one rule set for the editor and the runtime', () => {
  for (const [type, fields] of Object.entries(LIMITS) as Array<[string, Record<string, Limit>]>) {
    it(`${type}: the editor's validate and the runtime agree on every boundary value`, () => {
      const def = editorDef(type);
      for (const [field, l] of Object.entries(fields)) {
        const d = def.defaults[field];
        assert.ok(d?.validate, `${type}.${field}: the editor validates it`);
        for (const v of probes(l)) {
          const empty = typeof v === 'string' && v.trim() === '';
          const editor: boolean = d.validate.call({ _: (k: string) => k }, v) === true && !(empty && d.required);
          assert.equal(editor, runtime[type](field, v), `${type}.${field} = ${JSON.stringify(v)}: editor ${editor ? 'accepts' : 'refuses'}, runtime disagrees`);
        }
      }
    });
  }

  it('the editor reports the problem in the runtime\'s words (from the same catalog code)', () => {
    const def = editorDef('rt-gate-endpoint');
    const catalogKey = def.defaults.port.validate!.call({ _: (k: string) => k }, '70000', {});
    assert.equal(catalogKey, 'rt-gate-endpoint.codes.out-of-range-whole');
    const runtimeProblem = readEndpoint({ id: 'e', type: 'rt-gate-endpoint', host: 'h', port: '70000' }).problems[0];
    assert.equal(en('rt-gate-command', runtimeProblem), 'port must be a whole number in [1, 65535]');
    assert.equal(en('rt-gate-endpoint', runtimeProblem), 'port must be a whole number in [1, 65535]');
  });

  it('limitOk: empty means default, whole numbers and exclusive minimums', () => {
    assert.equal(limitOk('', { min: 1, max: 2 }), true);
    assert.equal(limitOk(undefined, { min: 1, max: 2 }), true);
    assert.equal(limitOk(1.5, { min: 1, max: 2, integer: true }), false);
    assert.equal(limitOk(0, { min: 0, max: 2, above: true }), false);
    assert.equal(limitOk(true, { min: 0, max: 2 }), false);
  });
});
