// Every shipped example (examples/**) imports and deploys in a real Node-RED
// runtime (a child process with this tree's nodes loaded through nodesDir)
// with zero errors in the log; no two examples share a node id (importing
// both must not clash); the dashboard examples say what they need.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, sleep } from '../helpers/util';

function listJson(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...listJson(p));
    else if (f.endsWith('.json')) out.push(p);
  }
  return out.sort();
}

/** Puts tab-less example nodes onto one tab, as Import does. */
export function onTab(nodes: Array<Record<string, unknown>>, tab = 'example_tab'): object[] {
  const hasTab = nodes.some((n) => n.type === 'tab');
  if (hasTab) return nodes;
  return [{ id: tab, type: 'tab', label: 'example' }, ...nodes.map((n) => (n.type === 'tab' || (n.z === undefined && !('wires' in n)) ? n : { ...n, z: tab }))];
}

const examples = listJson(join(repoRoot, 'examples'));

describe('examples and shipped flows deploy in a real Node-RED runtime', function () {
  this.timeout(120_000);
  let rt: ChildRuntime;
  before(async () => {
    rt = await startNodeRed({ settings: { logging: { console: { level: 'warn' } } } });
  });
  after(async () => {
    await rt.kill('SIGTERM');
    rt.cleanup();
  });

  it('finds examples for every non-config node listed in package.json', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
    const configTypes = new Set(['rt-scale', 'rt-rs485-port', 'rt-gate-endpoint']);
    for (const type of Object.keys(pkg['node-red'].nodes)) {
      if (configTypes.has(type)) continue;
      const used = examples.some((f) => readFileSync(f, 'utf8').includes(`"type": "${type}"`) || readFileSync(f, 'utf8').includes(`"type":"${type}"`));
      assert.ok(used, `no example uses ${type}`);
    }
  });

  it('no two examples share a node id, so importing any of them together never clashes', () => {
    const owner = new Map<string, string>();
    for (const file of examples) {
      for (const n of JSON.parse(readFileSync(file, 'utf8')) as Array<{ id: string }>) {
        const prev = owner.get(n.id);
        assert.ok(prev === undefined, `id ${n.id} in both ${prev} and ${file}`);
        owner.set(n.id, file);
      }
    }
    assert.ok(owner.size > 50, `only ${owner.size} ids found`);
  });

  it('an example that uses Dashboard 2.0 nodes says so in its first comment node', () => {
    const dash = examples.filter((f) => /"type":\s*"ui-/.test(readFileSync(f, 'utf8')));
    assert.ok(dash.length >= 2, `dashboard examples: ${dash.join(', ')}`);
    for (const file of dash) {
      const first = (JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, string>>).find((n) => n.type !== 'tab');
      assert.match(`${first?.name} ${first?.info}`, /@flowfuse\/node-red-dashboard/, file);
    }
  });

  it('Import > Examples lists this package and every example folder', async () => {
    const r = await rt.get('/library/examples/flows/@rtedge/node-red-realtime-edge/');
    assert.equal(r.status, 200, r.text);
    const listed = JSON.parse(r.text) as string[];
    const dirs = readdirSync(join(repoRoot, 'examples')).filter((d) => statSync(join(repoRoot, 'examples', d)).isDirectory());
    for (const d of dirs) assert.ok(listed.includes(d), `examples/${d} not offered by the editor: ${r.text}`);
  });

  for (const file of examples) {
    const name = file.slice(repoRoot.length + 1);
    it(`deploys ${name} with zero errors`, async () => {
      const nodes = JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, unknown>>;
      assert.ok(Array.isArray(nodes) && nodes.length > 0);
      const first = nodes.find((n) => n.type !== 'tab');
      assert.equal(first?.type, 'comment', 'an example starts with a comment node');
      const before = rt.log().length;
      await rt.deploy(onTab(nodes));
      await sleep(1500);
      const log = rt.log().slice(before);
      const errors = log.split('\n').filter((l) => /\[error\]/.test(l));
      assert.deepEqual(errors, [], `errors while running ${name}:\n${log}`);
      assert.doesNotMatch(log, /Waiting for missing types|unknown type/i, `missing node types for ${name}`);
    });
  }
});
