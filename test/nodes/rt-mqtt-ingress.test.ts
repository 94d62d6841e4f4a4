// rt-mqtt-ingress in a real Node-RED runtime: the embedded broker (aedes in the
// worker), a real mosquitto, real MQTT publishers and a real TCP peer.
import assert from 'node:assert/strict';
import { connect as tcpConnect } from 'node:net';

import { connect, type MqttClient } from 'mqtt';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto';
import { collect, connected, counts, ingressFlow, SUBS } from '../helpers/ingress-flow';
import { freePort, sleep, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ingressNode = require('../../nodes/rt-mqtt-ingress/rt-mqtt-ingress');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const brokerNode = require('../../nodes/rt-mqtt-broker/rt-mqtt-broker');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const catchNode = require('@node-red/nodes/core/common/25-catch.js');

helper.init(require.resolve('node-red'));

const load = (f: object[]): Promise<void> =>
  new Promise((resolve, reject) => helper.load([brokerNode, ingressNode, catchNode], f, (err: Error | undefined) => (err ? reject(err) : resolve())));



function mqttClient(url: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = connect(url, { reconnectPeriod: 100, connectTimeout: 5000 });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

const pub = (c: MqttClient, topic: string, body: unknown, qos: 0 | 1 = 1): Promise<void> =>
  new Promise((resolve, reject) => c.publish(topic, typeof body === 'string' ? body : JSON.stringify(body), { qos }, (err) => (err ? reject(err) : resolve())));

const frame = (n: number): object => ({ frame: n, ts: 1764270000000 + n, sensor: 's1', objects: [{ id: 't-1', x: 1.5, y: 3.1, z: 1.7 }] });
const event = (n: number): object => ({ seq: n, ts: 1764270000000 + n, sensor: 's1', type: 'zone-enter', track: 't-1', zone: 'pos-1' });

describe('rt-mqtt-ingress node', function () {
  this.timeout(60_000);
  let mosq: Mosquitto | null = null;
  let clients: MqttClient[] = [];
  afterEach(async () => {
    for (const c of clients) c.end(true);
    clients = [];
    await helper.unload();
    if (mosq) await mosq.close();
    mosq = null;
    await waitFor(() => activeWorkerCount() === 0, 5000, 'no worker left');
  });

  it('embedded broker: frames, events (an array too) and authorisations come out parsed, in order, with kind/source/topic/ingress', async () => {
    const port = await freePort();
    await load(ingressFlow({ url: '', port }));
    const out = collect('out');
    const c = (await waitFor(() => mqttClient(`mqtt://127.0.0.1:${port}`).catch(() => null), 10_000, 'the embedded broker'))!;
    clients.push(c);
    await connected();
    await pub(c, 'store/s1/tracks', frame(1), 0);
    await pub(c, 'store/s1/events', [event(1), event(2)]);
    await pub(c, 'store/s1/auth', { id: 'a-77', ts: 1764270001000, pos: 'pos-1', count: 2 });
    await waitFor(() => out.length >= 4, 10_000, '4 messages');
    const kinds = out.map((m) => `${m.kind}/${m.source}`).sort();
    assert.deepEqual(kinds, ['auth/acc-mqtt', 'event/events', 'event/events', 'frame/tracks']);
    const ev = out.filter((m) => m.kind === 'event');
    assert.deepEqual(ev.map((m) => m.payload.seq), [1, 2]);
    assert.equal(ev[0].topic, 'store/s1/events');
    const ing = ev[0].ingress as { seq: number; received: number };
    assert.ok(ing.seq > 0 && Math.abs(ing.received - Date.now()) < 10_000, JSON.stringify(ing));
    const fr = out.find((m) => m.kind === 'frame')!;
    assert.deepEqual(fr.payload, frame(1));
  });

  it('malformed input goes to Catch with the raw text and is counted; the next message is processed', async () => {
    mosq = await startMosquitto();
    await load(ingressFlow({ url: mosq.url }));
    const out = collect('out');
    const caught = collect('caught');
    await connected();
    const c = await mqttClient(mosq.url);
    clients.push(c);
    await pub(c, 'store/s1/events', '{"seq": 1, "ts": oops');
    await pub(c, 'store/s1/events', { seq: 2, ts: 1, sensor: 's1', type: 'zone-enter', track: 't-1' }); // no zone
    await pub(c, 'store/s1/events', event(3));
    await waitFor(() => out.length >= 1 && caught.length >= 2, 10_000, 'one event and two errors').catch((e) => {
      throw new Error(`${e.message}: ${out.length} out, ${caught.length} caught, ${JSON.stringify(counts())}`);
    });
    assert.equal(out[0].payload.seq, 3);
    assert.equal(caught[0].payload as unknown, '{"seq": 1, "ts": oops');
    assert.equal(caught[0].source, 'events');
    assert.equal(caught[0].topic, 'store/s1/events');
    const n = counts().sources.events;
    assert.equal(n.malformed, 2);
    assert.equal(n.delivered, 1);
    assert.equal(n.received, 3);
  });

  it('counts the frames missing by number as gaps, per source', async () => {
    mosq = await startMosquitto();
    await load(ingressFlow({ url: mosq.url }));
    const out = collect('out');
    await connected();
    const c = await mqttClient(mosq.url);
    clients.push(c);
    for (const n of [1, 2, 5, 6, 10]) await pub(c, 'store/s1/tracks', frame(n), 1);
    await waitFor(() => out.length >= 5, 10_000, '5 frames');
    assert.equal(counts().sources.tracks.gaps, 2 + 3);
    assert.equal(counts().sources.events.gaps, 0);
  });

  it('a subscription the broker refuses (granted 0x80): not reported connected; it reconnects with backoff and subscribes again', async () => {
    // a broker of our own (aedes in this process) that refuses the first two subscriptions
    const { Aedes } = await import('aedes');
    let refusals = 2;
    const broker = await Aedes.createBroker({
      authorizeSubscribe: (_client, sub, cb) => {
        if (refusals > 0) {
          refusals--;
          cb(null, null); // refused: SUBACK 0x80 for that filter
        } else cb(null, sub);
      },
    });
    const { createServer } = await import('node:net');
    const server = createServer((sock) => broker.handle(sock));
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    try {
      await load(ingressFlow({ url: `mqtt://127.0.0.1:${port}` }, { subs: [SUBS[1]] }));
      const out = collect('out');
      await waitFor(() => counts().connected === 1, 15_000, 'connected once the broker grants the subscription');
      assert.ok(counts().connects >= 3, `connects ${counts().connects}: two refused, then granted`);
      assert.equal(refusals, 0);
      const c = await mqttClient(`mqtt://127.0.0.1:${port}`);
      clients.push(c);
      await pub(c, 'store/s1/events', event(1));
      await waitFor(() => out.length >= 1, 10_000, 'an event through the subscription granted on the third connection');
    } finally {
      await helper.unload();
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('TCP listener: newline-delimited authorisations (split and joined lines) are a source of their own', async () => {
    const tcpPort = await freePort();
    await load([
      { id: 'f1', type: 'tab', label: 'tcp' },
      { id: 'in', z: 'f1', type: 'rt-mqtt-ingress', version: 1, broker: '', subs: [], tcpPort, tcpHost: '127.0.0.1', tcpSource: 'pos-system', wires: [['out']] },
      { id: 'out', z: 'f1', type: 'helper' },
      { id: 'c1', z: 'f1', type: 'catch', scope: ['in'], uncaught: false, wires: [['caught']] },
      { id: 'caught', z: 'f1', type: 'helper' },
    ]);
    const out = collect('out');
    const caught = collect('caught');
    const sock = (await waitFor(
      () =>
        new Promise<ReturnType<typeof tcpConnect> | null>((resolve) => {
          const s = tcpConnect(tcpPort, '127.0.0.1');
          s.once('connect', () => resolve(s));
          s.once('error', () => resolve(null));
        }),
      10_000,
      'the listener',
    ))!;
    sock.write('{"id":"a-1","ts":1,"pos":"pos-1",');
    await sleep(50);
    sock.write('"count":1}\n{"id":"a-2","ts":2,"pos":"pos-2","count":3,"tracks":["t-9"]}\r\nnot json\n');
    await waitFor(() => out.length >= 2 && caught.length >= 1, 10_000, 'two authorisations and an error');
    sock.end();
    assert.deepEqual(out.map((m) => m.payload.id), ['a-1', 'a-2']);
    assert.equal(out[0].kind, 'auth');
    assert.equal(out[0].source, 'pos-system');
    assert.equal(out[0].topic, 'tcp:pos-system');
    assert.equal(caught[0].payload as unknown, 'not json');
    assert.equal(counts().sources['pos-system'].delivered, 2);
    assert.equal(counts().sources['pos-system'].malformed, 1);
  });
});
