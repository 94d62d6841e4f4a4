// The scenario player and the simulated door and gate controllers of
// scripts/store-sim.mjs (what `npm start` runs beside the store gate flow),
// against a real mosquitto, a real TCP client and the pty's far end.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';

import { connect } from 'mqtt';

import { type Mosquitto, startMosquitto } from '../helpers/mosquitto';
import { DoorReaderProbe } from '../helpers/store-door-probe';
import { makeScenario } from '../helpers/store-scenario';
import { repoRoot, tempDir, waitFor } from '../helpers/util';

const script = join(repoRoot, 'scripts', 'store-sim.mjs');

describe('store-sim: the scripted store, the door and the gate controller', function () {
  this.timeout(90_000);
  let mq: Mosquitto;
  before(async () => {
    mq = await startMosquitto({ persistence: false });
  });
  after(async () => {
    await mq?.close();
  });

  it('a seeded scenario is the same for the same seed and differs for another', () => {
    const a = makeScenario({ shoppers: 40, unauthorised: 0.25, seed: 7 });
    const b = makeScenario({ shoppers: 40, unauthorised: 0.25, seed: 7 });
    const c = makeScenario({ shoppers: 40, unauthorised: 0.25, seed: 8 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(
      a.shoppers.map((s) => s.kind),
      c.shoppers.map((s) => s.kind),
    );
    assert.equal(a.shoppers.length, 40);
    assert.equal(a.shoppers.filter((s) => !s.authorised).length, 10);
  });

  it('--play publishes every event and authorisation of the scenario to the broker (QoS 1), numbered per sensor', async () => {
    const sub = connect(mq.url);
    await new Promise<void>((r) => sub.once('connect', () => r()));
    const got: Array<{ topic: string; body: Record<string, unknown> }> = [];
    sub.on('message', (topic, payload) => got.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }));
    await sub.subscribeAsync('store/#', { qos: 1 });
    const p = spawn(process.execPath, [script, '--play', '12', '--unauthorised', '0.25', '--seed', '3', '--broker', mq.url, '--speed', '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => p.once('exit', r));
    assert.equal(code, 0, out);
    const sc = makeScenario({ shoppers: 12, unauthorised: 0.25, seed: 3 });
    const expect = (t: string): number => sc.steps.filter((s) => s.topic === t).length;
    await waitFor(() => got.filter((g) => g.topic === 'store/s1/events').length === expect('events'), 10_000, 'all events');
    assert.equal(got.filter((g) => g.topic === 'store/acc/auth').length, expect('auth'));
    const seqs = got.filter((g) => g.topic === 'store/s1/events').map((g) => g.body.seq);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
    );
    assert.match(out, new RegExp(`played 12 shoppers \\(seed 3, \\d+ messages\\); expected ${sc.shoppers.filter((s) => s.gate).length} gate opens`));
    await sub.endAsync();
  });

  it('--door and --gate-port: a gate command is acknowledged and opens the simulated door for a while', async function () {
    const tmp = tempDir('rtedge-storesim-');
    const p = spawn(process.execPath, [script, '--door', tmp.dir, '--gate-port', '0', '--door-open-ms', '300'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const ready = await waitFor(() => /ready (.*)\n/.exec(out), 10_000, 'ready');
      const { door, gatePort } = JSON.parse(ready![1]) as { door: string; gatePort: number };
      assert.equal(door, join(tmp.dir, 'door-pty'));
      // poll the door controller over the pty as rt-rs485-watch would (Modbus 0x02, unit 1, input 0)
      const probe = new DoorReaderProbe(door);
      await probe.open();
      assert.equal(await probe.read(), false, 'closed at first');
      const sock = tcpConnect(gatePort, '127.0.0.1');
      let reply = '';
      sock.on('data', (d) => (reply += d.toString()));
      sock.write('OPEN G1 t-9\r\n');
      await waitFor(() => reply.includes('\n'), 5000, 'reply');
      assert.equal(reply, 'OK G1 t-9\r\n');
      assert.equal(await probe.read(), true, 'the gate controller opened the door');
      await waitFor(async () => (await probe.read()) === false, 5000, 'the door closes by itself', 50);
      sock.destroy();
      await probe.close();
    } finally {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
      tmp.cleanup();
    }
  });
});
