// The flows `npm start` deploys, built from the shipped examples (examples/**),
// merged the way the editor's Import and the Dashboard 2.0 editor would merge
// them: every example keeps its own ids (no two shipped flows share one, a
// test checks it), a tab-less example gets a tab of its own, and when more
// than one example brings a Dashboard `ui-base` the first one is kept and the
// pages of the others are moved under it (Dashboard 2.0 serves one base).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The examples `npm start` shows: the dashboards, the journey log, the store gate (flows/store-gate.json, the same as its example) and the control API. */
export const START_EXAMPLES = [
  'examples/rt-dosing/02 - Dosing station dashboard.json',
  'examples/rt-perf-monitor/02 - Performance dashboard.json',
  'examples/rt-journey-egress/01 - Log journeys to a daily JSONL file.json',
  'flows/store-gate.json',
  'examples/rt-control-plant/01 - HTTP control API with dashboard.json',
];

export function exampleFiles(root) {
  const walk = (d) =>
    readdirSync(d).flatMap((f) => {
      const p = join(d, f);
      return statSync(p).isDirectory() ? walk(p) : p.endsWith('.json') ? [p] : [];
    });
  return walk(join(root, 'examples')).sort();
}

/**
 * Merges example files into one flow set. `files` are paths relative to
 * `root`; `edit(node)` may return a changed copy of a node (tests use it to
 * give a serial port or a TCP port).
 */
export function mergeFlows(root, files, edit = (n) => n) {
  const out = [];
  let base = null;
  files.forEach((file, k) => {
    const abs = join(root, file);
    const nodes = JSON.parse(readFileSync(abs, 'utf8'));
    const tab = nodes.find((n) => n.type === 'tab')?.id ?? `example_tab_${k}`;
    if (!nodes.some((n) => n.type === 'tab')) out.push({ id: tab, type: 'tab', label: relative(root, abs).replace(/\.json$/, '') });
    const bases = new Set(nodes.filter((n) => n.type === 'ui-base').map((n) => n.id));
    for (const n of nodes) {
      if (n.type === 'ui-base') {
        if (base !== null) continue;
        base = n.id;
      }
      let x = n;
      // as Import does: config nodes (no z, no wires) stay global, the rest goes on the example's tab
      const isConfig = n.z === undefined && !('wires' in n) && n.type !== 'comment';
      if (n.type !== 'tab' && !isConfig) x = { ...x, z: n.z || tab };
      if (typeof x.ui === 'string' && bases.has(x.ui) && base !== null) x = { ...x, ui: base };
      out.push(edit(x));
    }
  });
  return out;
}
