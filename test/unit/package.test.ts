// What a user's npm and Node-RED see of package.json: the Node-RED range
// admits both supported lines (Node-RED refuses a package whose range
// excludes it), and the runtime dependencies are exactly what the runtime
// imports (no package installed into a user's ~/.node-red for nothing).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';

import { repoRoot, walk } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const semver = require('semver') as { satisfies(v: string, range: string): boolean };

interface Pkg {
  'node-red': { version: string };
  engines: { node: string };
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  files: string[];
}
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Pkg;

/** The package a bare specifier names ('@scope/name/sub' -> '@scope/name'). */
const packageOf = (spec: string): string => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');

describe('package.json for users', () => {
  it('node-red.version admits Node-RED 4.1 and 5 (and no older line)', () => {
    for (const v of ['4.1.0', '4.1.15', '5.0.0', '5.0.7', '5.9.0']) assert.ok(semver.satisfies(v, pkg['node-red'].version), `${v} not in ${pkg['node-red'].version}`);
    for (const v of ['3.1.9', '4.0.9']) assert.ok(!semver.satisfies(v, pkg['node-red'].version), `${v} in ${pkg['node-red'].version}`);
  });

  it('engines.node admits Node 20 and 22', () => {
    for (const v of ['20.0.0', '20.20.2', '22.9.0', '22.23.3']) assert.ok(semver.satisfies(v, pkg.engines.node), `${v} not in ${pkg.engines.node}`);
  });

  it('runtime dependencies are exactly the packages the runtime (nodes/) imports; optional ones are named by the code', () => {
    const builtins = new Set(builtinModules);
    const imported = new Map<string, string>();
    const sources = walk(join(repoRoot, 'nodes')).filter((f) => f.endsWith('.ts'));
    const re = /(?:from\s+|require\(\s*|import\(\s*)'([^'.][^']*)'/g;
    for (const f of sources) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(re)) {
        const spec = m[1]!;
        if (spec.startsWith('node:') || builtins.has(packageOf(spec))) continue;
        if (/^import\s+type\b/m.test(text.slice(Math.max(0, m.index! - 200), m.index!).split('\n').pop() ?? '')) continue;
        imported.set(packageOf(spec), relative(repoRoot, f));
      }
    }
    const declared = Object.keys(pkg.dependencies).sort();
    assert.deepEqual(declared, [...imported.keys()].sort(), `imports: ${JSON.stringify(Object.fromEntries(imported))}`);
    const all = sources.map((f) => readFileSync(f, 'utf8')).join('\n');
    for (const opt of Object.keys(pkg.optionalDependencies ?? {})) assert.ok(all.includes(`'${opt}'`), `optional dependency ${opt} is never named in nodes/`);
  });

  it('ships the examples and the built nodes only', () => {
    assert.ok(pkg.files.includes('examples/'));
    assert.ok(pkg.files.some((f) => f.startsWith('dist/nodes')));
    assert.ok(!pkg.files.some((f) => f === 'dist/' || f.startsWith('test') || f.startsWith('bench')), JSON.stringify(pkg.files));
  });
});
