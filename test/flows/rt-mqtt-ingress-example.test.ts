// The rt-mqtt-ingress example (examples/rt-mqtt-ingress/01 ...) in a real
// Node-RED: on its own embedded broker, the event injected at start comes out
// parsed, the authorisation injected through the admin API too, and the
// malformed message goes to the Catch node with its raw text and is counted.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { freePort, repoRoot, waitFor } from '../helpers/util';

const file = join(repoRoot, 'examples', 'rt-mqtt-ingress', '01 - Tracking events and authorisations from MQTT.json');

describe('rt-mqtt-ingress example', function () {
  this.timeout(90_000);
  let rt: ChildRuntime | null = null;
  after(async () => {
    if (rt) {
      await rt.kill('SIGTERM').catch(() => undefined);
      rt.cleanup();
    }
  });

  it('runs on its embedded broker: events and authorisations come out parsed, malformed input goes to Catch and is counted', async () => {
    const port = await freePort();
    const nodes = (JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, unknown>>).map((n) => {
      if (n.type === 'rt-mqtt-broker') return { ...n, port };
      if (n.type === 'mqtt-broker') return { ...n, port: String(port) };
      if (n.type === 'debug') return { ...n, console: true }; // into the runtime's log, which the test reads
      return n;
    });
    assert.equal(nodes.find((n) => n.type !== 'tab')?.type, 'comment');
    rt = await startNodeRed({ flows: nodes });
    const r = rt;
    const outOfIngress = (): string => r.log().split('[debug:events in]').slice(1).join('');
    await waitFor(() => /Connected to broker/.test(r.log()), 30_000, 'the publisher (core mqtt out) on the embedded broker');
    assert.equal((await r.post('/inject/mi_event', {})).status, 200);
    await waitFor(() => /zone-enter/.test(outOfIngress()), 30_000, 'the zone event out of the ingress').catch((e) => {
      throw new Error(`${(e as Error).message}\n${r.log()}`);
    });
    assert.equal((await r.post('/inject/mi_auth', {})).status, 200);
    await waitFor(() => /a-1/.test(outOfIngress()), 10_000, 'the authorisation out of the ingress');
    assert.equal((await r.post('/inject/mi_bad', {})).status, 200);
    await waitFor(() => r.log().includes('[debug:refused (raw text)]'), 10_000, 'the malformed message at the Catch node');
    const caught = r.log().split('[debug:refused (raw text)]')[1];
    assert.match(caught, /not a number/, 'with its raw text');
    const m = (await r.get('/metrics')).text;
    assert.match(m, /rtedge_ingress_malformed_total\{[^}]*source="events"[^}]*\} 1/);
    assert.match(m, /rtedge_ingress_delivered_total\{[^}]*source="acc-mqtt"[^}]*\} 1/);
    assert.doesNotMatch(r.log(), /\[error\] \[(?!rt-mqtt-ingress:sensor \+ checkout\])/, 'no error but the malformed report');
  });
});
