// Copies the editor assets that tsc does not emit into dist/nodes/<type>/:
// <type>.html, locales/**, and the node's icon(s) from the top-level icons/ folder.
// Node-RED loads X.html, locales/ and icons/ from beside each listed X.js.
// In <type>.html, the marker `<!-- rt-limits -->` is replaced by a script that
// defines the node's numeric limits (rtLimit(type, field) validators) from
// nodes/shared/limits.ts, as compiled by tsc just before: one rule set for the
// runtime and the editor.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'nodes');
const out = join(root, 'dist', 'nodes');
const icons = join(root, 'icons');
const MARKER = '<!-- rt-limits -->';
const { editorScript } = createRequire(import.meta.url)(join(out, 'shared', 'limits.js'));

let copied = 0;
for (const type of readdirSync(src)) {
  const dir = join(src, type);
  if (!statSync(dir).isDirectory() || !type.startsWith('rt-')) continue;
  const dest = join(out, type);
  mkdirSync(dest, { recursive: true });
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.html')) {
      const html = readFileSync(join(dir, f), 'utf8');
      if (/rtLimit\(/.test(html) && !html.includes(MARKER)) throw new Error(`${type}/${f} uses rtLimit() but has no ${MARKER} marker before its registerType`);
      writeFileSync(join(dest, f), html.replace(MARKER, editorScript(type)));
      copied++;
    }
  }
  // plain browser modules a node serves (rt-ws-batcher's client), copied as they are
  if (existsSync(join(dir, 'client'))) {
    cpSync(join(dir, 'client'), join(dest, 'client'), { recursive: true });
    copied++;
  }
  if (existsSync(join(dir, 'locales'))) {
    cpSync(join(dir, 'locales'), join(dest, 'locales'), { recursive: true });
    copied++;
  }
  if (existsSync(icons)) {
    mkdirSync(join(dest, 'icons'), { recursive: true });
    for (const f of readdirSync(icons)) {
      if (f.endsWith('.svg') || f.endsWith('.png')) {
        cpSync(join(icons, f), join(dest, 'icons', f));
        copied++;
      }
    }
  }
}
console.log(`copy-assets: ${copied} assets copied into dist/nodes`);
