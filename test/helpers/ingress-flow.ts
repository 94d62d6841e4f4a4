// Flows and probes shared by the rt-mqtt-ingress tests (and the tracker's): an
// ingress on a broker config, wired to a helper node, with a Catch node.
import type { IngressCounts } from '../../nodes/rt-mqtt-ingress/ingress-protocol';
import { waitFor } from './util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');

type Msg = Record<string, unknown> & { payload: Record<string, unknown> };
interface TestNode {
  on(ev: string, fn: (msg: Msg) => void): void;
}

export const SUBS = [
  { topic: 'store/s1/tracks', parser: 'tracks', qos: 0, source: 'tracks' },
  { topic: 'store/s1/events', parser: 'events', qos: 1, source: 'events' },
  { topic: 'store/s1/auth', parser: 'auth', qos: 1, source: 'acc-mqtt' },
];

export function ingressFlow(broker: Record<string, unknown>, ingress: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'ingress' },
    { id: 'br', type: 'rt-mqtt-broker', name: 'broker', version: 1, backoffMin: 50, backoffMax: 500, keepalive: 5, ...broker },
    { id: 'in', z: 'f1', type: 'rt-mqtt-ingress', version: 1, broker: 'br', subs: SUBS, queueLimit: 4096, wires: [['out']], ...ingress },
    { id: 'out', z: 'f1', type: 'helper' },
    { id: 'c1', z: 'f1', type: 'catch', scope: ['in'], uncaught: false, wires: [['caught']] },
    { id: 'caught', z: 'f1', type: 'helper' },
  ];
}

export function collect(id: string): Msg[] {
  const out: Msg[] = [];
  (helper.getNode(id) as TestNode).on('input', (m) => out.push(m));
  return out;
}

export function counts(id = 'in'): IngressCounts {
  const n = helper.getNode(id) as { _counts?: () => IngressCounts };
  if (!n._counts) throw new Error(`node ${id} has no counters (bad config?)`);
  return n._counts();
}

export const connected = (id = 'in'): Promise<unknown> => waitFor(() => counts(id).connected === 1, 10_000, 'the ingress to connect');

