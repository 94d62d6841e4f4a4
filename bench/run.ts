// npm run bench [-- <name> ... [--flag value ...]]: runs the named benchmarks
// (default: all) one after another, each in its own process, and passes their
// output through. Names come before the first flag; every argument from the
// first flag on (flags and their values) is passed to each benchmark.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = __dirname;
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.js') && f !== 'run.js')
  .map((f) => f.slice(0, -3))
  .sort();
const args = process.argv.slice(2);
const firstFlag = args.findIndex((a) => a.startsWith('-'));
const wanted = firstFlag < 0 ? args : args.slice(0, firstFlag);
const passed = firstFlag < 0 ? [] : args.slice(firstFlag);
const names = wanted.length ? wanted : all;
let failed = 0;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; have: ${all.join(', ')}`);
    failed++;
    continue;
  }
  console.error(`\n=== bench ${name} ===`);
  const r = spawnSync(process.execPath, [join(dir, `${name}.js`), ...passed], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
