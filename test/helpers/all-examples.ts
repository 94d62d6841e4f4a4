// Every shipped example (examples/**.json) as one flow set for one runtime,
// merged as the editor's Import (and the Dashboard editor, for its ui-base)
// would: scripts/shipped-flows.mjs, the same code `npm start` uses. The gate
// example's simulated controller goes on a free port, the RS485 example's
// serial port on a pty path given by the test. The store gate example
// (ids sg_*) gets ports of its own (its gate controller stand-in and its
// embedded MQTT broker) and a serial path that does not exist (its door stays
// unknown, one warning), so it never shares a port with the others.
import { join, relative } from 'node:path';

import { freePort, repoRoot } from './util';

type Flow = Record<string, unknown>;
interface ShippedFlows {
  exampleFiles(root: string): string[];
  mergeFlows(root: string, files: string[], edit?: (n: Flow) => Flow): Flow[];
  START_EXAMPLES: string[];
}

// A real dynamic import (module node16 keeps it) of the ES module script.
export const shippedFlows = (): Promise<ShippedFlows> => import(join(repoRoot, 'scripts', 'shipped-flows.mjs')) as Promise<ShippedFlows>;

export async function exampleFiles(): Promise<string[]> {
  return (await shippedFlows()).exampleFiles(repoRoot);
}

/** o.files: the example files to merge (relative to the repo root); default every shipped example. */
export async function allExampleFlows(o: { gatePort: number; serialPath: string; files?: string[] }): Promise<Flow[]> {
  const s = await shippedFlows();
  const files = o.files ?? s.exampleFiles(repoRoot).map((f) => relative(repoRoot, f));
  const store = { gate: await freePort(), mqtt: await freePort(), ingress: await freePort() };
  return s.mergeFlows(repoRoot, files, (n) => {
    if (typeof n.id === 'string' && n.id.startsWith('sg_')) {
      if (n.type === 'rt-gate-endpoint') return { ...n, port: store.gate };
      if (n.type === 'tcp in') return { ...n, port: String(store.gate) };
      if (n.type === 'rt-mqtt-broker') return { ...n, port: store.mqtt };
      if (n.type === 'mqtt-broker') return { ...n, port: String(store.mqtt) };
      if (n.type === 'rt-rs485-port') return { ...n, path: `${o.serialPath}-store-gate` };
      return n;
    }
    // the rt-mqtt-ingress example (ids mi_*): its embedded broker on a free port
    if (typeof n.id === 'string' && n.id.startsWith('mi_')) {
      if (n.type === 'rt-mqtt-broker') return { ...n, port: store.ingress };
      if (n.type === 'mqtt-broker') return { ...n, port: String(store.ingress) };
      return n;
    }
    if (n.type === 'rt-gate-endpoint') return { ...n, port: o.gatePort };
    if (n.type === 'tcp in') return { ...n, port: String(o.gatePort) };
    if (n.type === 'rt-rs485-port') return { ...n, path: o.serialPath };
    return n;
  });
}
