// The rt-rs485-watch example in a real Node-RED process, pointed at a socat
// pty pair with a simulated door controller on the far end: door state and
// frame counts on GET /metrics, no [error] in the log, and a redeploy that
// removes the nodes releases the serial port.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { SerialPort } from 'serialport';

import { DoorSim } from '../helpers/door-sim';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { type PtyPair, ptyPair } from '../helpers/pty';
import { repoRoot, waitFor } from '../helpers/util';

const value = (text: string, name: string, labels: string): number => {
  const m = text.match(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
};

describe('rt-rs485-watch in a Node-RED process', function () {
  this.timeout(60_000);
  let rt: ChildRuntime | null = null;
  let pty: PtyPair | null = null;
  let sim: DoorSim | null = null;
  after(async () => {
    if (rt) {
      await rt.kill('SIGTERM');
      rt.cleanup();
    }
    await sim?.stop();
    await pty?.dispose();
  });

  it('the example reads the simulated controller; /metrics shows the door; redeploy releases the port', async () => {
    pty = await ptyPair();
    sim = new DoorSim({ path: pty.b });
    await sim.start();
    rt = await startNodeRed({ settings: { logging: { console: { level: 'warn' } } } });
    const file = join(repoRoot, 'examples', 'rt-rs485-watch', '01 - Door state from an RS485 bus.json');
    const nodes = JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, unknown>>;
    const flows: object[] = [{ id: 'tab', type: 'tab', label: 'door' }];
    for (const n of nodes) {
      if (n.type === 'rt-rs485-port') flows.push({ ...n, path: pty.a, baudRate: 115200 });
      else flows.push({ ...n, z: 'tab' });
    }
    await rt.deploy(flows);
    let text = '';
    const metrics = async (): Promise<string> => (text = (await rt!.get('/metrics')).text);
    await waitFor(async () => value(await metrics(), 'rtedge_rs485_door_state', 'node="rsx_watch"') === 0, 10_000, 'door closed');
    sim.open = true;
    await waitFor(async () => value(await metrics(), 'rtedge_rs485_door_state', 'node="rsx_watch"') === 1, 5000, 'door open');
    assert.equal(value(text, 'rtedge_rs485_port_open', 'port="rsx_port"'), 1);
    assert.ok(value(text, 'rtedge_rs485_frames_total', 'port="rsx_port",result="ok"') >= 2);
    assert.equal(value(text, 'rtedge_rs485_door_changes_total', 'node="rsx_watch"'), 2);
    sim.fault = 'bad_crc';
    await waitFor(async () => value(await metrics(), 'rtedge_rs485_door_state', 'node="rsx_watch"') === -1, 5000, 'unknown on bad CRCs');
    assert.ok(value(text, 'rtedge_rs485_frames_total', 'port="rsx_port",result="bad_crc"') >= 1);
    sim.fault = 'none';
    await waitFor(async () => value(await metrics(), 'rtedge_rs485_door_state', 'node="rsx_watch"') === 1, 5000, 'open again');
    assert.doesNotMatch(rt.log(), /\[error\]/);

    // A full deploy without the nodes closes the port: the path opens (with its lock) at once.
    await rt.deploy([{ id: 'tab', type: 'tab', label: 'empty' }]);
    await new Promise<void>((resolve, reject) => {
      const p = new SerialPort({ path: pty!.a, baudRate: 115200, autoOpen: false });
      p.open((err) => (err ? reject(err) : p.close(() => resolve())));
    });
    assert.doesNotMatch((await metrics()), /rtedge_rs485_port_open\{port="rsx_port"\}/, 'no stale series after removal');
  });
});
