// rt-journey-egress's MQTT outbox against a real mosquitto: every batch written
// to the file is published at QoS 1; with the broker down and back nothing is
// lost (duplicates only as QoS 1 allows); the outbox is on disk (survives a
// redeploy) and bounded (counted when full).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { connect, type MqttClient } from 'mqtt';

import { activeWorkerCount } from '../../nodes/shared/worker-host';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto';
import { freePort, sleep, tempDir, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require('node-red-node-test-helper');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const egressNode = require('../../nodes/rt-journey-egress/rt-journey-egress');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const brokerNode = require('../../nodes/rt-mqtt-broker/rt-mqtt-broker');

helper.init(require.resolve('node-red'));

type Counts = { published: number; acked: number; dropped: number; outbox: number; connected: number };
const mqttCounts = (): Counts => (helper.getNode('eg') as { _mqttCounts: () => Counts })._mqttCounts();

function flow(url: string, dir: string, eg: Record<string, unknown> = {}): object[] {
  return [
    { id: 'f1', type: 'tab', label: 'egress' },
    { id: 'br', type: 'rt-mqtt-broker', version: 1, url, backoffMin: 100, backoffMax: 500 },
    { id: 'eg', z: 'f1', type: 'rt-journey-egress', version: 1, path: join(dir, 'journeys.jsonl'), flushCount: 10, flushMs: 100, mqttBroker: 'br', mqttTopic: 'store/s1/journeys', wires: [[]], ...eg },
  ];
}

const load = (f: object[]): Promise<void> =>
  new Promise((resolve, reject) => helper.load([brokerNode, egressNode], f, (err: Error | undefined) => (err ? reject(err) : resolve())));

/** A subscriber with a persistent session: what the broker accepted while it was away is delivered later. */
function subscriber(url: string, seen: number[]): Promise<MqttClient> {
  return new Promise((resolve) => {
    const c = connect(url, { clientId: 'fleet-sub', clean: false, reconnectPeriod: 100 });
    c.on('message', (_t, p) => {
      for (const line of p.toString().split('\n')) if (line) seen.push((JSON.parse(line) as { journey: number }).journey);
    });
    c.once('connect', () => c.subscribe('store/+/journeys', { qos: 1 }, () => resolve(c)));
  });
}

/** The egress worker is up (batches are cut as the journeys arrive, not all at once when it starts). */
const ready = (): Promise<unknown> => waitFor(() => (helper.getNode('eg') as { _lease?: { state: string } })._lease?.state === 'ready', 10_000, 'the egress worker');

function send(from: number, to: number): void {
  const eg = helper.getNode('eg') as { receive(m: object): void };
  for (let i = from; i <= to; i++) eg.receive({ payload: { journey: i, outcome: 'complete' } });
}

const fileJourneys = (dir: string): number[] =>
  readFileSync(join(dir, 'journeys.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { journey: number }).journey);

const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe('rt-journey-egress MQTT outbox (mosquitto)', function () {
  this.timeout(60_000);
  let mosq: Mosquitto | null = null;
  let sub: MqttClient | null = null;
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('rt-egress-mqtt-');
  });
  afterEach(async () => {
    await helper.unload();
    sub?.end(true);
    sub = null;
    if (mosq) await mosq.close();
    mosq = null;
    tmp.cleanup();
    await waitFor(() => activeWorkerCount() === 0, 5000, 'no worker left');
  });

  it('publishes every batch at QoS 1; the broker down for a while and back: nothing lost, the file intact', async () => {
    mosq = await startMosquitto();
    const seen: number[] = [];
    sub = await subscriber(mosq.url, seen);
    await load(flow(mosq.url, tmp.dir));
    await waitFor(() => mqttCounts().connected === 1, 10_000, 'the outbox to connect');
    for (let k = 0; k < 10; k++) {
      send(k * 10 + 1, k * 10 + 10);
      await sleep(50);
    }
    await waitFor(() => new Set(seen).size >= 100, 10_000, 'the first 100');
    await mosq.stop();
    for (let k = 10; k < 30; k++) {
      send(k * 10 + 1, k * 10 + 10); // written to the file, waiting in the outbox
      await sleep(150);
    }
    assert.ok(mqttCounts().outbox > 0, 'batches wait in the outbox while the broker is down');
    await mosq.start();
    send(301, 400);
    await waitFor(() => new Set(seen).size >= 400, 20_000, `all 400 journeys at the subscriber (${new Set(seen).size})`);
    assert.deepEqual([...new Set(seen)].sort((a, b) => a - b), range(1, 400));
    await waitFor(() => mqttCounts().outbox === 0, 10_000, 'the outbox to empty');
    const c = mqttCounts();
    assert.equal(c.dropped, 0);
    assert.ok(c.acked > 0 && c.published >= c.acked, JSON.stringify(c));
    // QoS 1: duplicates possible around the outage (a resent batch), no republish loop
    assert.ok(seen.length - 400 < 200, `duplicates ${seen.length - 400}`);
    assert.deepEqual(fileJourneys(tmp.dir), range(1, 400), 'the file has every journey once, in order');
  });

  it('the outbox is on disk: batches left unacknowledged by a redeploy are published by the next deployment', async () => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}`;
    await load(flow(url, tmp.dir)); // no broker yet
    await ready();
    for (let k = 0; k < 3; k++) {
      send(k * 10 + 1, k * 10 + 10); // one batch each
      await sleep(200);
    }
    await waitFor(() => mqttCounts().outbox === 3, 10_000, 'three batches in the outbox').catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(mqttCounts())} ${readdirSync(tmp.dir).join(',')} lines ${fileJourneys(tmp.dir).length} outbox: ${readFileSync(join(tmp.dir, '.rt-egress-eg.outbox'), 'utf8').slice(0, 300)}`);
    });
    await helper.unload();
    assert.ok(readdirSync(tmp.dir).some((f) => f.endsWith('.outbox')), 'an outbox file beside the journeys');
    mosq = await startMosquitto({ port });
    const seen: number[] = [];
    sub = await subscriber(mosq.url, seen);
    await load(flow(url, tmp.dir));
    await waitFor(() => new Set(seen).size >= 30, 10_000, 'the 30 journeys of the previous deployment');
    assert.deepEqual([...new Set(seen)].sort((a, b) => a - b), range(1, 30));
  });

  it('a full outbox counts the batches it could not take; they are still in the file', async () => {
    const port = await freePort();
    await load(flow(`mqtt://127.0.0.1:${port}`, tmp.dir, { outboxLimit: 3 }));
    await ready();
    for (let k = 0; k < 10; k++) {
      send(k * 10 + 1, k * 10 + 10); // one batch each
      await sleep(200);
    }
    await waitFor(() => mqttCounts().outbox + mqttCounts().dropped === 10, 10_000, '10 batches queued or dropped');
    assert.equal(mqttCounts().outbox, 3);
    assert.equal(mqttCounts().dropped, 7);
    assert.deepEqual(fileJourneys(tmp.dir), range(1, 100));
  });
});
