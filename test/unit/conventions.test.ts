// Project conventions that the Flow Library scorecard, the checklist and the
// thread-boundary rule ask for, checked over the sources.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import ts from 'typescript';

import { DEFAULT_PLANT } from '../helpers/dosing-plant';
import { repoRoot, walk } from '../helpers/util';

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

/** RTS/DTR/flow-control words in an identifier or string (camelCase and snake_case split; comments are not looked at). */
const DIRECTION_WORDS = new Set(['rts', 'dtr', 'rtscts']);
const directionWords = (text: string): string[] =>
  text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.toLowerCase())
    .filter((w) => DIRECTION_WORDS.has(w));

/**
 * Places in the given sources that could drive the RS485 direction lines from
 * JS: an identifier or string literal naming rts / dtr / rtscts (in any case:
 * `{ rts: true }`, `setRTS`, `rtscts: true`), or a `.set(...)` call that is
 * serialport's `set({rts, dtr, brk})` — its method resolves to the serialport
 * packages, to a serial-port-like type, or to nothing (an `any` receiver).
 * `.set()` of Maps, flow context, typed arrays or the status helper is fine.
 * Comments are trivia in the syntax tree, so mentions there are allowed.
 */
function rs485DirectionUses(files: string[]): string[] {
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    noEmit: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const found: string[] = [];
  for (const file of files) {
    const sf = program.getSourceFile(file);
    assert.ok(sf, file);
    const where = (n: ts.Node): string => `${relative(repoRoot, file)}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
    const visit = (n: ts.Node): void => {
      if (ts.isIdentifier(n) || ts.isPrivateIdentifier(n) || ts.isStringLiteralLike(n) || ts.isTemplateHead(n) || ts.isTemplateMiddle(n) || ts.isTemplateTail(n)) {
        const words = directionWords(n.text);
        if (words.length) found.push(`${where(n)}: ${words.join(', ')} in ${JSON.stringify(n.text)}`);
      }
      if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression) && n.expression.name.text === 'set') {
        const sym = checker.getSymbolAtLocation(n.expression.name);
        const receiver = checker.typeToString(checker.getTypeAtLocation(n.expression.expression));
        const decls = sym?.declarations ?? [];
        const serial = decls.some((d) => /node_modules[\\/](@serialport|serialport)[\\/]/.test(d.getSourceFile().fileName));
        if (!sym || decls.length === 0 || serial || /serial/i.test(receiver)) {
          found.push(`${where(n)}: ${n.getText(sf).slice(0, 60)} (receiver ${receiver}: serialport set() toggles RTS/DTR)`);
        }
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return found;
}

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
      assert.doesNotMatch(html, /data-help-name=/, `${type}: the help lives in locales/en-US/${type}.html, not in the editor .html`);
      const help = join(dir, 'locales', 'en-US', `${type}.html`);
      assert.ok(existsSync(help), `${type}: ${relative(repoRoot, help)}`);
      assert.match(readFileSync(help, 'utf8'), new RegExp(`^<script type="text/html" data-help-name="${type}">\\s*<p>`), `${type}: localized help starts with the tooltip <p>`);
      assert.match(html, new RegExp(`data-template-name="${type}"`), `${type}: edit form`);
      const icon = html.match(/icon:\s*'([^']+)'/)?.[1];
      assert.ok(icon && existsSync(join(repoRoot, 'icons', icon)), `${type}: icon file icons/${icon}`);
      const loc = join(dir, 'locales', 'en-US', `${type}.json`);
      assert.ok(existsSync(loc), `${type}: ${relative(repoRoot, loc)}`);
      assert.ok((JSON.parse(readFileSync(loc, 'utf8')) as Record<string, unknown>)[type], `${type}: catalog namespaced by type`);
    }
  });

  it('help follows the core style: Inputs/Outputs for nodes with ports, Details, References where hardware or specs are involved', () => {
    const refs: Record<string, RegExp[]> = {
      'rt-hx711': [/HX711 datasheet/, /pigpio/],
      'rt-scale': [/HX711 datasheet/, /pigpio/],
      'rt-rs485-watch': [/Modbus application protocol/, /Modbus over serial line/],
      'rt-rs485-port': [/serialport/, /rs485/i],
      'rt-perf-monitor': [/messaging hooks/],
    };
    for (const type of nodeTypes) {
      const dir = join(repoRoot, 'nodes', type);
      const html = readFileSync(join(dir, `${type}.html`), 'utf8');
      const help = readFileSync(join(dir, 'locales', 'en-US', `${type}.html`), 'utf8');
      const inputs = Number(/inputs:\s*(\d+)/.exec(html)?.[1] ?? 0);
      const outputs = Number(/outputs:\s*(\d+)/.exec(html)?.[1] ?? 0);
      if (inputs > 0) assert.match(help, /<h3>Inputs<\/h3>\s*<dl class="message-properties">/, `${type}: Inputs`);
      if (outputs > 0) assert.match(help, /<h3>Outputs<\/h3>\s*<(dl class="message-properties"|ol class="node-ports")>/, `${type}: Outputs`);
      if (outputs > 1) assert.equal((help.match(/<li>/g) ?? []).length >= outputs, true, `${type}: one item per output`);
      assert.match(help, /<h3>Details<\/h3>/, `${type}: Details`);
      if (inputs + outputs > 0) assert.match(help, /<dt[^>]*>[^<]+<span class="property-type">/, `${type}: property types`);
      for (const re of refs[type] ?? []) assert.match(help.split('<h3>References</h3>')[1] ?? '', re, `${type}: References ${re}`);
    }
  });

  it('every node with outputs has translated outputLabels (catalog keys <type>.outputs.*)', () => {
    for (const type of nodeTypes) {
      const dir = join(repoRoot, 'nodes', type);
      const html = readFileSync(join(dir, `${type}.html`), 'utf8');
      const outputs = Number(/outputs:\s*(\d+)/.exec(html)?.[1] ?? 0);
      if (outputs === 0) continue;
      const labels = /outputLabels:\s*(function[^\n]*)/.exec(html)?.[1];
      assert.ok(labels, `${type}: outputLabels`);
      const cat = (JSON.parse(readFileSync(join(dir, 'locales', 'en-US', `${type}.json`), 'utf8')) as Record<string, Record<string, Record<string, string>>>)[type];
      const keys = [...labels.matchAll(/outputs\.([A-Za-z]+)'|'([A-Za-z]+)'/g)].map((m) => m[1] ?? m[2]);
      assert.match(labels, new RegExp(`this\\._\\('${type}\\.outputs\\.`), `${type}: outputLabels are worded by the node's catalog`);
      assert.ok(keys.length > 0 && keys.every((k) => typeof cat.outputs?.[k] === 'string'), `${type}: outputs.{${keys.join(',')}} in the catalog`);
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

  it('a producer knows no consumer (STYLE 16): nodes/rt-scale/ imports only its own files and nodes/shared/, never rt-dosing or another node', () => {
    const importRe = /(?:from\s+|import\s*\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
    const found: string[] = [];
    for (const f of sources.filter((x) => relative(repoRoot, x).startsWith(join('nodes', 'rt-scale')))) {
      const src = readFileSync(f, 'utf8');
      for (const m of src.matchAll(importRe)) {
        const target = relative(join(repoRoot, 'nodes'), join(f, '..', m[1]));
        const top = target.split(/[\\/]/)[0];
        if (top !== 'rt-scale' && top !== 'shared') found.push(`${relative(repoRoot, f)} imports ${m[1]}`);
      }
    }
    assert.deepEqual(found, []);
  });

  it('calibration and learned state are read and written asynchronously: no sync fs call in the scale, the dosing node or the store', () => {
    for (const rel of ['nodes/rt-scale/calibration-store.ts', 'nodes/rt-scale/rt-scale.ts', 'nodes/rt-dosing/rt-dosing.ts']) {
      const src = readFileSync(join(repoRoot, rel), 'utf8');
      assert.doesNotMatch(src, /\b[a-zA-Z]+Sync\s*\(/, `${rel} calls a sync fs function on the flow engine's thread`);
    }
  });

  it('RS485 direction is the kernel rs485 mode or auto-direction hardware: nodes/rt-rs485-* never toggle RTS/DTR from JS', function () {
    this.timeout(30_000); // builds a TypeScript program to resolve every .set() call
    const files = sources.filter((f) => /^nodes[\\/]rt-rs485-[^\\/]+[\\/]/.test(relative(repoRoot, f)));
    assert.ok(files.length >= 8, `rs485 sources: ${files.map((f) => relative(repoRoot, f)).join(', ')}`);
    assert.deepEqual(rs485DirectionUses(files), []);
  });

  it('dashboard charts in the shipped examples keep at most 500 points', () => {
    const files = walk(join(repoRoot, 'examples')).filter((x) => x.endsWith('.json'));
    assert.ok(files.some((f) => readFileSync(f, 'utf8').includes('"ui-chart"')), 'no example has a chart');
    for (const f of files) {
      const charts = (JSON.parse(readFileSync(f, 'utf8')) as Array<Record<string, unknown>>).filter((n) => n.type === 'ui-chart');
      for (const c of charts) {
        const cap = Number(c.removeOlderPoints);
        assert.ok(Number.isInteger(cap) && cap > 0 && cap <= 500, `${f} ${String(c.id)}: removeOlderPoints ${String(c.removeOlderPoints)}`);
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

  it('the dosing controller knows no plant: nodes/rt-dosing never imports the simulator, and no plant default is a constant there', () => {
    const dir = join(repoRoot, 'nodes', 'rt-dosing');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    assert.ok(files.includes('dosing-core.ts'));
    // the reference plant's numbers, in the units a controller would write them
    const delayUs = Math.round(DEFAULT_PLANT.delayS * 1e6);
    const forbiddenEverywhere = new Set([delayUs, delayUs / 1000, DEFAULT_PLANT.delayS]); // the old tau constant (us, ms, s)
    // one ripple period (the old rate window) in us; only in the controller itself (rt-dosing.ts has an unrelated 500_000 cg capacity;
    // in ms it would be 500, which is also the fine duty's upper bound in permille)
    const ripplePeriodUs = Math.round(1e6 / DEFAULT_PLANT.rippleHz);
    const forbiddenInController = new Set([ripplePeriodUs]);
    for (const f of files) {
      const src = readFileSync(join(dir, f), 'utf8');
      assert.doesNotMatch(src, /sim-world|sim-hx711|dosing-plant|DEFAULT_PLANT|DEFAULT_SIM_CHIP|PlantParams/, `${f} reads the simulator`);
      // numeric literals outside comments
      const code = src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      for (const m of code.matchAll(/(?<![\w.])\d[\d_]*(\.\d+)?(?![\w.])/g)) {
        const v = Number(m[0].replace(/_/g, ''));
        assert.ok(!forbiddenEverywhere.has(v), `${f}: ${m[0]} is the reference plant's delay`);
        if (f === 'dosing-core.ts' || f === 'dose-runner.ts') assert.ok(!forbiddenInController.has(v), `${f}: ${m[0]} is the reference plant's ripple period`);
      }
    }
  });
});
