// Project conventions that the Flow Library scorecard, the checklist and the
// thread-boundary rule ask for, checked over the sources.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

import { repoRoot } from '../helpers/util';

function walk(dir: string, out: string[] = []): string[] {
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  name: string;
  keywords: string[];
  engines: { node: string };
  license: string;
  'node-red': { version: string; nodes: Record<string, string> };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  allowScripts?: Record<string, boolean>;
};
const nodeTypes = Object.keys(pkg['node-red'].nodes);
const sources = walk(join(repoRoot, 'nodes')).filter((f) => f.endsWith('.ts'));

describe('project conventions', () => {
  it('package.json declares Node-RED and Node ranges, keywords, license; node-red is not a peer dependency', () => {
    assert.match(pkg['node-red'].version, />=4\.1/);
    assert.ok(pkg.keywords.includes('node-red'));
    assert.match(pkg.engines.node, />=20/);
    assert.ok(pkg.license);
    assert.equal(pkg.peerDependencies?.['node-red'], undefined);
    assert.ok(pkg.devDependencies['node-red'], 'node-red is a devDependency (tests, npm start)');
    assert.ok(pkg.optionalDependencies?.pigpio, 'pigpio is optional');
    assert.equal(pkg.allowScripts?.pigpio, true, 'pigpio listed in allowScripts');
  });

  it('every listed node has its source, editor HTML with literal registerType fields, help, locale and icon', () => {
    for (const type of nodeTypes) {
      const entry = pkg['node-red'].nodes[type];
      assert.equal(entry, `dist/nodes/${type}/${type}.js`);
      const dir = join(repoRoot, 'nodes', type);
      assert.ok(existsSync(join(dir, `${type}.ts`)), `${type}.ts`);
      const html = readFileSync(join(dir, `${type}.html`), 'utf8');
      assert.match(html, new RegExp(`registerType\\(\\s*'${type}'\\s*,\\s*\\{`), `${type}: literal registerType`);
      assert.match(html, /category:\s*'(realtime edge|config)'/, `${type}: literal category`);
      for (const field of ['defaults:', 'color:', 'icon:']) assert.ok(html.includes(field), `${type}: ${field}`);
      if (!/category:\s*'config'/.test(html)) {
        for (const field of ['inputs:', 'outputs:']) assert.ok(html.includes(field), `${type}: ${field}`);
      }
      assert.match(html, new RegExp(`data-help-name="${type}"`), `${type}: help text`);
      assert.match(html, new RegExp(`data-template-name="${type}"`), `${type}: edit form`);
      const icon = html.match(/icon:\s*'([^']+)'/)?.[1];
      assert.ok(icon && existsSync(join(repoRoot, 'icons', icon)), `${type}: icon file icons/${icon}`);
      const loc = join(dir, 'locales', 'en-US', `${type}.json`);
      assert.ok(existsSync(loc), `${type}: ${relative(repoRoot, loc)}`);
      assert.ok((JSON.parse(readFileSync(loc, 'utf8')) as Record<string, unknown>)[type], `${type}: catalog namespaced by type`);
    }
  });

  it('every RED._ key used by a node exists in its catalog', () => {
    for (const type of nodeTypes) {
      const dir = join(repoRoot, 'nodes', type);
      const cat = JSON.parse(readFileSync(join(dir, 'locales', 'en-US', `${type}.json`), 'utf8')) as Record<string, unknown>;
      for (const f of walk(dir).filter((x) => x.endsWith('.ts'))) {
        const src = readFileSync(f, 'utf8');
        for (const m of src.matchAll(/RED\._\(\s*[`'"](?:\$\{TYPE\}|[a-z0-9-]+)\.([a-zA-Z0-9_.]+)[`'"]/g)) {
          let cur: unknown = cat[type];
          for (const k of m[1].split('.')) cur = (cur as Record<string, unknown> | undefined)?.[k];
          assert.equal(typeof cur, 'string', `${relative(repoRoot, f)}: missing catalog key ${type}.${m[1]}`);
        }
      }
    }
  });

  it('node adapters use no hard-coded status or error text', () => {
    for (const type of nodeTypes) {
      const f = join(repoRoot, 'nodes', type, `${type}.ts`);
      const src = readFileSync(f, 'utf8');
      const bad = [
        ...src.matchAll(/node\.(error|warn|log)\(\s*['"`][^'"`]/g),
        ...src.matchAll(/\.(set|immediate)\(\s*'(ok|connecting|error|stopped|simulated|depth)'\s*,\s*['"`]/g),
        ...src.matchAll(/new Error\(\s*['"`]/g),
      ].map((m) => m[0]);
      assert.deepEqual(bad, [], `${relative(repoRoot, f)} has literal user-visible strings`);
    }
  });

  it('the thread boundary is one visible seam: worker_threads only in worker-host/worker-runtime; no node-red import in nodes/', () => {
    const allowed = new Set(['nodes/shared/worker-host.ts', 'nodes/shared/worker-runtime.ts']);
    for (const f of sources) {
      const rel = relative(repoRoot, f);
      const src = readFileSync(f, 'utf8');
      if (/from ['"](node:)?worker_threads['"]|require\(['"](node:)?worker_threads['"]\)/.test(src)) {
        assert.ok(allowed.has(rel), `${rel} imports worker_threads`);
      }
      assert.doesNotMatch(src, /from ['"]node-red['"]|require\(['"]node-red['"]\)|@node-red\//, `${rel} imports node-red`);
      if (/(-core|\.worker)\.ts$/.test(rel)) {
        assert.doesNotMatch(src, /shared\/registry|shared\/status|red-types/, `${rel} must stay free of Node-RED adapters`);
      }
    }
  });

  it('one metrics client package in the dependency tree', () => {
    const out = execFileSync('npm', ['ls', 'prom-client', '@prometheus-io/client', '--all', '--parseable'], { cwd: repoRoot, encoding: 'utf8' });
    const copies = out.split('\n').filter((l) => /node_modules[\\/](prom-client|@prometheus-io[\\/]client)$/.test(l));
    assert.equal(copies.length, 1, out);
  });

  it('no absolute paths of a machine in committed sources', () => {
    const files = execFileSync('git', ['ls-files'], { cwd: repoRoot, encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const f of files) {
      if (/package-lock\.json$|\.svg$/.test(f) || !existsSync(join(repoRoot, f))) continue;
      const text = readFileSync(join(repoRoot, f), 'utf8');
      assert.doesNotMatch(text, /\/work\/main|\/root\/|\/home\/[a-z]+\//, `${f} has a machine path`);
    }
  });
});
