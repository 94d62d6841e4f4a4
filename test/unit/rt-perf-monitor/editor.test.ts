// rt-perf-monitor editor: the rules field is validated in the editor with the
// same checks as at deploy (the editor script runs here against a stub RED).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';

import { parseRules } from '../../../nodes/rt-perf-monitor/rules-core';
import { codeText, en } from '../../helpers/catalog';
import { repoRoot } from '../../helpers/util';

type Validate = (this: object, v: unknown, opt?: object) => boolean | string;
interface Def {
  defaults: Record<string, { value: unknown; validate?: Validate }>;
  outputs: number;
}

function editorDef(): Def {
  // the built .html: the build puts the shared limits (rtLimit) before registerType
  const html = readFileSync(join(repoRoot, 'dist', 'nodes', 'rt-perf-monitor', 'rt-perf-monitor.html'), 'utf8');
  const scripts = [...html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  let def: Def | null = null;
  const RED = { validators: { number: () => () => true }, nodes: { registerType: (_t: string, d: Def) => (def = d) } };
  const ctx = { RED, $: () => ({ val: () => '' }) };
  for (const js of scripts) runInNewContext(js, ctx);
  return def!;
}

/** An editor node: `_` words a key from the node's en-US catalog, as the editor's i18n does. */
const node = {
  _: (key: string, params: Record<string, unknown> = {}): string => {
    const code = key.replace(/^rt-perf-monitor\.codes\./, '');
    const text = codeText('rt-perf-monitor', code);
    if (text === undefined) throw new Error(`no catalog text for ${key}`);
    return text.replace(/__([A-Za-z0-9_]+?)__/g, (_m, k: string) => String(params[k]));
  },
};

describe('rt-perf-monitor editor', () => {
  const def = editorDef();
  const validate = def.defaults.rules.validate!;

  it('accepts the default (no extra rules) and valid rules', () => {
    assert.equal(def.outputs, 3);
    assert.equal(validate.call(node, def.defaults.rules.value), true);
    assert.equal(validate.call(node, '[{"metric":"node.latency","node":"busy","threshold":10,"window":30,"for":2,"severity":"critical"}]', {}), true);
  });

  it('shows a clear message for each kind of bad rule, and agrees with the runtime check', () => {
    const bad = [
      'not json',
      '{"metric":"eventloop.delay"}',
      '[{"threshold":5}]',
      '[{"metric":"cpu","threshold":5}]',
      '[{"metric":"eventloop.delay","threshold":0}]',
      '[{"metric":"eventloop.delay","threshold":5,"percentile":101}]',
      '[{"metric":"memory.rss","threshold":5,"percentile":99}]',
      '[{"metric":"node.latency","threshold":5}]',
      '[{"metric":"eventloop.delay","threshold":5,"severity":"high"}]',
      '[{"metric":"eventloop.delay","threshold":5,"for":1.5}]',
      '[{"metric":"eventloop.delay","threshold":5,"hysteresis":1}]',
      '[{"metric":"eventloop.delay","threshold":5,"treshold":5}]',
    ];
    for (const text of bad) {
      assert.equal(validate.call(node, text), false, text);
      const msg = validate.call(node, text, {});
      assert.equal(typeof msg, 'string', text);
      const runtime = parseRules(text, 10).problems;
      assert.ok(runtime.length > 0, `runtime rejects ${text}`);
      // word for word what the runtime reports at deploy (its first problem, from the same catalog)
      assert.equal(msg, en('rt-perf-monitor', runtime[0]), text);
    }
  });

  it('window must be positive and within its period', () => {
    const w = def.defaults.window.validate!;
    assert.equal(w.call({ period: 10 }, 1), true);
    assert.equal(w.call({ period: 10 }, 0), false);
    assert.equal(w.call({ period: 10 }, 11), false);
  });
});
