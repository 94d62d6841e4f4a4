// Every shipped example (examples/**.json) as one flow set for one runtime,
// as the editor's Import would place them: each on its tab, config nodes
// global; the gate example's simulated controller on a free port, the RS485
// example's serial port on a pty path given by the test.
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { repoRoot, walk } from './util';

export function exampleFiles(): string[] {
  return walk(join(repoRoot, 'examples'))
    .filter((f) => f.endsWith('.json'))
    .sort();
}

export function allExampleFlows(o: { gatePort: number; serialPath: string }): Array<Record<string, unknown>> {
  const flows: Array<Record<string, unknown>> = [];
  exampleFiles().forEach((file, k) => {
    const nodes = JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, unknown>>;
    const tab = nodes.find((n) => n.type === 'tab')?.id ?? `example_tab_${k}`;
    if (!nodes.some((n) => n.type === 'tab')) flows.push({ id: tab, type: 'tab', label: relative(repoRoot, file) });
    for (const n of nodes) {
      let x: Record<string, unknown> = n;
      // as Import does: config nodes (no z, no wires) stay global, the rest goes on the example's tab
      const isConfig = n.z === undefined && !('wires' in n) && n.type !== 'comment';
      if (n.type !== 'tab' && !isConfig) x = { ...x, z: n.z || tab };
      if (n.type === 'rt-gate-endpoint') x = { ...x, port: o.gatePort };
      if (n.type === 'tcp in') x = { ...x, port: String(o.gatePort) };
      if (n.type === 'rt-rs485-port') x = { ...x, path: o.serialPath };
      flows.push(x);
    }
  });
  return flows;
}
