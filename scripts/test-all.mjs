#!/usr/bin/env node
// npm run test:all: the one command that passes the tests on a fresh Debian
// machine, and what .ci/run calls.
//
//  1. The Debian packages the tests use (socat: pty pairs for the serial tests;
//     mosquitto: an MQTT broker; chromium: dashboard and editor pages;
//     prometheus: promtool, which checks what /metrics serves). Run as root, it
//     installs the missing ones with apt-get; otherwise it names them and the
//     command that installs them, and stops.
//  2. npm ci when node_modules is missing or older than package-lock.json.
//  3. The whole `npm test` on each supported line, one after the other:
//       nr4: this Node (20 or later) with the node-red of package-lock.json (4.1.x);
//       nr5: Node 22 from the npm registry (node-linux-<arch>@22, the official
//            binary) with node-red 5, in a copy of the tree under .ci-cache/
//            (its own node_modules, so this tree is left as it is).
//     `--leg nr4` or `--leg nr5` runs one of them.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = join(root, '.ci-cache');
const NODE22 = process.env.RTEDGE_NODE22_SPEC || 'node-linux-' + (process.arch === 'arm64' ? 'arm64' : 'x64') + '@22';
const NODE_RED_5 = process.env.RTEDGE_NODE_RED_5_SPEC || 'node-red@^5';

const args = process.argv.slice(2);
const legArg = args.includes('--leg') ? args[args.indexOf('--leg') + 1] : 'all';
const legs = legArg === 'all' ? ['nr4', 'nr5'] : [legArg];
for (const l of legs) if (l !== 'nr4' && l !== 'nr5') fail(`unknown leg ${l}: use --leg nr4 or --leg nr5`);

function fail(msg) {
  console.error(`test:all: ${msg}`);
  process.exit(1);
}

function run(cmd, argv, opts = {}) {
  console.log(`\ntest:all> ${cmd} ${argv.join(' ')}${opts.cwd && opts.cwd !== root ? `   (in ${opts.cwd})` : ''}`);
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  return r.status ?? 1;
}

function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd} || test -x /usr/sbin/${cmd}`], { stdio: 'ignore' }).status === 0;
}

// 1. Debian packages
const debs = [
  ['socat', 'socat'],
  ['mosquitto', 'mosquitto'],
  ['chromium', 'chromium'],
  ['promtool', 'prometheus'],
  // node-gyp's tools, for the gpiocdev addon's build test (a fresh machine of this kind has them)
  ['make', 'make'],
  ['g++', 'g++'],
  ['python3', 'python3'],
];
const missing = debs.filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg);
if (missing.length > 0) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) fail(`missing Debian packages: ${missing.join(' ')}\n  install them with: sudo apt-get install -y --no-install-recommends ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  if (run('apt-get', ['update', '-qq'], { env }) !== 0) fail('apt-get update failed');
  if (run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env }) !== 0) fail(`apt-get install ${missing.join(' ')} failed`);
}

// 2. npm packages of this tree
const stale = (dir) => !existsSync(join(dir, 'node_modules', '.package-lock.json')) || statSync(join(dir, 'node_modules', '.package-lock.json')).mtimeMs < statSync(join(dir, 'package-lock.json')).mtimeMs;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const results = [];
for (const leg of legs) {
  const t0 = Date.now();
  let code;
  if (leg === 'nr4') {
    if (stale(root) && run(npm, ['ci', '--no-audit', '--no-fund']) !== 0) fail('npm ci failed');
    run(process.execPath, ['-e', "console.log('node', process.version, 'node-red', require('node-red/package.json').version)"]);
    code = run(npm, ['test']);
  } else {
    // Node 22 from the npm registry
    const n22dir = join(cache, 'node22');
    const bin = join(n22dir, 'node_modules', NODE22.replace(/@[^@]*$/, ''), 'bin');
    if (!existsSync(join(bin, 'node'))) {
      mkdirSync(n22dir, { recursive: true });
      if (run(npm, ['install', '--prefix', n22dir, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', NODE22]) !== 0) fail(`npm install ${NODE22} failed`);
    }
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    // A copy of the tree (what git tracks, or everything but build output)
    const copy = join(cache, 'nr5');
    rmSync(copy, { recursive: true, force: true });
    mkdirSync(copy, { recursive: true });
    const skip = new Set(['node_modules', 'dist', '.ci-cache', '.node-red', '.git', '.bench-out']);
    for (const entry of readdirSync(root)) if (!skip.has(entry)) cpSync(join(root, entry), join(copy, entry), { recursive: true });
    if (run(npm, ['ci', '--no-audit', '--no-fund'], { cwd: copy, env }) !== 0) fail('npm ci (node 22) failed');
    if (run(npm, ['install', '--no-save', '--no-audit', '--no-fund', NODE_RED_5], { cwd: copy, env }) !== 0) fail(`npm install ${NODE_RED_5} failed`);
    run('node', ['-e', "console.log('node', process.version, 'node-red', require('node-red/package.json').version)"], { cwd: copy, env });
    code = run(npm, ['test'], { cwd: copy, env });
  }
  results.push({ leg, code, seconds: Math.round((Date.now() - t0) / 1000) });
  console.log(`\ntest:all: leg ${leg} ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${results.at(-1).seconds} s`);
}
console.log(`\ntest:all: ${results.map((r) => `${r.leg} ${r.code === 0 ? 'ok' : 'FAILED'} (${r.seconds} s)`).join(', ')}`);
process.exit(results.every((r) => r.code === 0) ? 0 : 1);
