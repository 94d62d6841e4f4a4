// The browser client module, run in Node with `ws`, against the real
// rt-ws-batcher in worker mode (its own port, served from a worker thread) in a
// real Node-RED process, fed directly by a simulated scale: the module is
// served on the worker's port, the client decodes the server's binary frames
// (80 samples a second, ordered times, no gap) and JSON frames for the flow's
// non-numeric messages in the same sequence.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import WebSocket from 'ws';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { freePort, sleep, waitFor } from '../helpers/util';

/* eslint-disable @typescript-eslint/no-explicit-any */
const clientDir = join(__dirname, '..', '..', 'nodes', 'rt-ws-batcher', 'client');

describe('rt-ws-batcher browser client against the node in worker mode (Node + ws)', function () {
  this.timeout(90_000);
  let rt: ChildRuntime | null = null;
  let client: any = null;
  let port = 0;
  after(async () => {
    client?.close();
    await rt?.kill('SIGKILL');
    rt?.cleanup();
  });

  it('decodes the live 80 SPS binary stream and the flow’s JSON messages, in one sequence', async () => {
    port = await freePort();
    const C: any = await import(join(clientDir, 'rt-ws-client.js'));
    rt = await startNodeRed();
    await rt.deploy([
      { id: 'wk_tab', type: 'tab', label: 'worker mode' },
      { id: 'wk_scale', type: 'rt-scale', name: 'sim', version: 1, backend: 'simulated', doutPin: '5', sckPin: '6', gain: 'A128', rate: '80', zero: '84000', countsPerGram: '420', motorPin: '18', motorHz: '10000', median: true, average: '4', stableG: '0.05', faultRun: '3', capacityG: '5000' },
      { id: 'wk_hx', type: 'rt-hx711', z: 'wk_tab', name: 'cell', version: 1, scale: 'wk_scale', rate: '1', deltaG: '0', wires: [[]] },
      { id: 'wk_note', type: 'inject', z: 'wk_tab', props: [{ p: 'payload' }, { p: 'topic', vt: 'str' }], repeat: '0.5', once: true, onceDelay: '0.5', topic: 'note', payload: 'hello', payloadType: 'str', wires: [['wk_ws']] },
      { id: 'wk_ws', type: 'rt-ws-batcher', z: 'wk_tab', name: 'w', version: 1, mode: 'worker', path: '/ws/w', port, host: '127.0.0.1', origins: '', batchSize: 100, delayMs: 16, capKb: 1024, graceS: 10, ringBatches: 256, deflateThreshold: 8192, deflateConcurrency: 2, scale: 'wk_scale', scaleTopic: 'weight', dashRate: 0, dashPoints: 500, wires: [[]] },
    ]);
    await waitFor(() => /Started flows/.test(rt!.log()), 20_000, 'flows started');
    // the module is served on the worker's own port too
    const mod = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${port}/ws/w/client.js`).catch(() => null);
        return r && r.status === 200 ? r.text() : null;
      },
      15_000,
      'client.js on the worker port',
      200,
    );
    assert.match(String(mod), /export class RtWsClient/);

    const bin: any[] = [];
    const json: any[] = [];
    client = new C.RtWsClient({ url: `ws://127.0.0.1:${port}/ws/w`, format: 'bin', WebSocket, pingMs: 0 });
    client.on('batch', (b: any) => (b.format === 'bin' ? bin : json).push(b));
    client.connect();
    await waitFor(() => client.stats.connects === 1, 15_000, 'hello');
    await sleep(5000);
    const pts: { t: number; v: number }[] = [];
    const all = [...bin, ...json].sort((a, b) => a.seq - b.seq);
    for (const b of all) C.forEachPoint(b, (topic: string, t: number, v: number) => topic === 'weight' && pts.push({ t, v }));
    const sps = pts.length / 5;
    assert.ok(sps >= 60 && sps <= 100, `about 80 samples a second from the scale: ${sps}/s in ${bin.length} binary and ${json.length} JSON batches`);
    for (let i = 1; i < pts.length; i++) assert.ok(pts[i].t >= pts[i - 1].t, `sample times in order at ${i}`);
    assert.ok(bin.length > json.length, 'numeric batches travel as binary frames');
    const notes = json.flatMap((b) => b.items.filter((it: any) => it.topic === 'note'));
    assert.ok(notes.length >= 5 && notes.every((it: any) => it.payload === 'hello'), `the flow's text notes arrive in JSON frames: ${notes.length}`);
    assert.ok(json.every((b) => b.items.some((it: any) => typeof it.payload !== 'number')), 'a JSON frame only for a batch with a non-numeric item');
    assert.equal(client.stats.unexpectedGaps, 0, 'one sequence across both frame kinds, no hole');
    assert.equal(client.stats.decodeErrors, 0);
  });
});
