// rt-mqtt-ingress over TLS against a real mosquitto with a TLS listener, with
// certificates made here by openssl in a temp dir (a CA and a server
// certificate for 127.0.0.1 signed by it): with that CA file the ingress
// connects and events come through; with another CA it is refused, says why
// (a warning naming the certificate problem, red status) and never reports
// connected.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { connect } from 'mqtt';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto';
import { collect, counts, ingressFlow, SUBS } from '../helpers/ingress-flow';
import { sleep, tempDir, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ingressNode = require('../../nodes/rt-mqtt-ingress/rt-mqtt-ingress');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const brokerNode = require('../../nodes/rt-mqtt-broker/rt-mqtt-broker');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

const load = (f: object[]): Promise<void> => new Promise((resolve, reject) => helper.load([brokerNode, ingressNode, catchNode], f, (err: Error | undefined) => (err ? reject(err) : resolve())));

const openssl = (dir: string, ...args: string[]): void => {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
};

/** A CA, and a server certificate for 127.0.0.1 signed by it; and a second CA that signed nothing. */
function makeCerts(dir: string): { ca: string; cert: string; key: string; otherCa: string } {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=rtedge test CA');
  openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(dir, 'x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=some other CA');
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), otherCa: join(dir, 'other.pem') };
}

// One broker and one set of certificates serve both: the ingress and the egress outbox build their client
// options through the same broker-config code.
describe('over TLS: mosquitto with a TLS listener, openssl certificates', function () {
  this.timeout(90_000);
  let mosq: Mosquitto | null = null;
  let tmp: { dir: string; cleanup(): void } | null = null;
  let certs: ReturnType<typeof makeCerts>;
  before(async () => {
    tmp = tempDir('rtedge-tls-');
    certs = makeCerts(tmp.dir);
    mosq = await startMosquitto({ persistence: false, tls: { ca: certs.ca, cert: certs.cert, key: certs.key } });
  });
  afterEach(async () => {
    await helper.unload();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'no worker left');
  });
  after(async () => {
    await mosq?.close();
    tmp?.cleanup();
  });

  describe('rt-mqtt-ingress', function () {
    it('with the CA file: connects over mqtts:// and delivers events', async () => {
      assert.match(mosq!.url, /^mqtts:/);
      await load(ingressFlow({ url: mosq!.url, tls: true, ca: certs.ca, verify: true }, { subs: [SUBS[1]] }));
      const out = collect('out');
      await waitFor(() => counts().connected === 1, 20_000, 'connected over TLS');
      const c = connect(mosq!.url, { ca: readFileSync(certs.ca) });
      await new Promise<void>((r, j) => {
        c.once('connect', () => r());
        c.once('error', j);
      });
      for (let i = 1; i <= 3; i++) await c.publishAsync('store/s1/events', JSON.stringify({ seq: i, ts: Date.now(), sensor: 'tls', type: 'track-create', track: `t-${i}` }), { qos: 1 });
      await c.endAsync();
      await waitFor(() => out.length >= 3, 10_000, '3 events over TLS');
      assert.deepEqual(
        out.map((m) => m.payload.track),
        ['t-1', 't-2', 't-3'],
      );
      assert.match(mosq!.log(), /New client connected/, 'the broker saw a TLS client');
    });

    it('with a CA that did not sign the broker certificate: refused, a warning says why, never connected', async () => {
      await load(ingressFlow({ url: mosq!.url, tls: true, ca: certs.otherCa, verify: true }, { subs: [SUBS[1]] }));
      const warns: string[] = [];
      (helper.getNode('in') as { on(e: string, f: (c: { args: unknown[] }) => void): void }).on('call:warn', (c) => warns.push(String(c.args[0])));
      await waitFor(() => warns.length > 0, 20_000, 'a warning');
      await sleep(1000);
      assert.equal(counts().connected, 0, 'never connected');
      assert.equal(counts().connects, 0);
      assert.match(warns[0], /linkDown/, 'the link-down warning (its text: "MQTT broker <url> unreachable or lost (<error>)")');
      const e = counts().linkError;
      assert.match(e, /self[- ]signed certificate|unable to (get|verify)|certificate/i, `the error names the certificate problem: ${e}`);
      assert.match(mosq!.log(), /OpenSSL Error|protocol error|Client <unknown> disconnected/i, 'the broker saw the handshake fail');
    });

    it('with a CA file that does not exist yet: no connection without it (even unverified), the file named; connects once it is there', async () => {
      const missing = join(tmp!.dir, 'later-ca.pem');
      // verify off: a client that went ahead without the CA file would be let in, so only not trying keeps connects at 0
      await load(ingressFlow({ url: mosq!.url, tls: true, ca: missing, verify: false, clientId: 'tls-late' }, { subs: [SUBS[1]] }));
      const warns: string[] = [];
      (helper.getNode('in') as { on(e: string, f: (c: { args: unknown[] }) => void): void }).on('call:warn', (c) => warns.push(String(c.args[0])));
      await waitFor(() => counts().linkError !== '', 20_000, 'the link error');
      await sleep(1500); // several backoff rounds (50-500 ms)
      assert.equal(counts().connects, 0, 'never connected without the CA file');
      assert.doesNotMatch(mosq!.log(), /as tls-late/, 'the broker never saw the client');
      assert.match(counts().linkError, /ENOENT.*later-ca\.pem/, `the error names the file: ${counts().linkError}`);
      copyFileSync(certs.ca, missing);
      await waitFor(() => counts().connected === 1, 20_000, 'connected once the CA file is there (read again before each attempt)');
      assert.equal(warns.filter((w) => /linkDown/.test(w)).length, 1, 'one warning for the outage');
    });

    it('with a CA file that does not exist: refused with the file named', async () => {
      const missing = join(tmp!.dir, 'no-such-ca.pem');
      await load(ingressFlow({ url: mosq!.url, tls: true, ca: missing, verify: true }, { subs: [SUBS[1]] }));
      const warns: string[] = [];
      (helper.getNode('in') as { on(e: string, f: (c: { args: unknown[] }) => void): void }).on('call:warn', (c) => warns.push(String(c.args[0])));
      await waitFor(() => warns.length > 0, 20_000, 'a warning');
      assert.equal(counts().connects, 0);
      assert.match(counts().linkError, /ENOENT.*no-such-ca\.pem/, `the error names the file: ${counts().linkError}`);
    });
  });

  describe('rt-journey-egress MQTT outbox (the same broker-config client options)', function () {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const egressNode = require('../../nodes/rt-journey-egress/rt-journey-egress');

    it('publishes the journey batches over mqtts:// with the CA file', async () => {
      const sub = connect(mosq!.url, { ca: readFileSync(certs.ca) });
      const seen: number[] = [];
      sub.on('message', (_t, p) => {
        for (const line of p.toString().split('\n')) if (line) seen.push((JSON.parse(line) as { journey: number }).journey);
      });
      await new Promise<void>((r, j) => {
        sub.once('connect', () => r());
        sub.once('error', j);
      });
      await sub.subscribeAsync('store/+/journeys', { qos: 1 });
      try {
        await new Promise<void>((resolve, reject) =>
          helper.load(
            [brokerNode, egressNode],
            [
              { id: 'f1', type: 'tab', label: 'egress' },
              { id: 'br', type: 'rt-mqtt-broker', version: 1, url: mosq!.url, tls: true, ca: certs.ca, verify: true, backoffMin: 100, backoffMax: 500 },
              { id: 'eg', z: 'f1', type: 'rt-journey-egress', version: 1, path: join(tmp!.dir, 'journeys.jsonl'), flushCount: 10, flushMs: 100, mqttBroker: 'br', mqttTopic: 'store/s1/journeys', wires: [[]] },
            ],
            (err: Error | undefined) => (err ? reject(err) : resolve()),
          ),
        );
        const eg = helper.getNode('eg') as { receive(m: object): void; _mqttCounts: () => { connected: number; acked: number; outbox: number } };
        await waitFor(() => eg._mqttCounts().connected === 1, 20_000, 'the outbox connected over TLS');
        for (let i = 1; i <= 20; i++) eg.receive({ payload: { journey: i, outcome: 'complete' } });
        await waitFor(() => new Set(seen).size >= 20, 10_000, `20 journeys at the subscriber (${seen.length})`);
        assert.deepEqual(
          [...new Set(seen)].sort((a, b) => a - b),
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        await waitFor(() => eg._mqttCounts().acked >= 1 && eg._mqttCounts().outbox === 0, 10_000, 'acknowledged, the outbox empty');
      } finally {
        await sub.endAsync();
      }
    });
  });
});
