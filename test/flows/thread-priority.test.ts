// The time-critical worker threads ask the kernel for a higher priority than
// the flow engine's thread: the HX711 HAL thread (rtEdgeHalNice) and the gate
// link thread (rtEdgeGateNice), both -10 by default. Read back from
// /proc/<pid>/task/*/stat of a real Node-RED process, per thread.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { startPeer, type Peer } from '../helpers/tcp-peer';
import { repoRoot, threadNiceness, waitFor } from '../helpers/util';

function exampleFlows(gatePort: number): object[] {
  const read = (dir: string, file: string): Array<Record<string, unknown>> =>
    JSON.parse(readFileSync(join(repoRoot, 'examples', dir, file), 'utf8')) as Array<Record<string, unknown>>;
  const config = new Set(['rt-scale', 'rt-gate-endpoint']);
  const onTab = (n: Record<string, unknown>): object => (config.has(n.type as string) ? n : { ...n, z: 'tab' });
  const flows: object[] = [{ id: 'tab', type: 'tab', label: 'priority' }];
  for (const n of read('rt-hx711', '01 - Live weight from a simulated HX711.json')) {
    if (n.type !== 'tab') flows.push(onTab(n));
  }
  for (const n of read('rt-gate-command', '01 - Open a gate from an inject.json')) {
    // The example's own simulated controller (core tcp in) is replaced by the test's peer.
    if (n.type === 'tab' || n.type === 'tcp in' || n.type === 'tcp out' || n.type === 'function' || n.type === 'change') continue;
    flows.push(onTab(n.type === 'rt-gate-endpoint' ? { ...n, port: gatePort } : n));
  }
  return flows;
}

describe('worker thread priority in a Node-RED process (Linux)', function () {
  this.timeout(90_000);
  let rt: ChildRuntime | null = null;
  let peer: Peer | null = null;
  before(function () {
    if (process.platform !== 'linux') this.skip(); // per-thread setpriority is Linux behaviour
  });
  afterEach(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
      rt = null;
    }
    if (peer) await peer.stop();
    peer = null;
  });

  it('the HAL thread and the gate link thread run at niceness -10, the flow engine at its own (0 as usual)', async function () {
    if (process.getuid?.() !== 0) this.skip(); // a negative niceness needs root or CAP_SYS_NICE
    peer = await startPeer('ok', 1);
    rt = await startNodeRed();
    // the process's own niceness (0 as usual; whatever `nice` the runtime was started under): the flow engine keeps it
    const base = threadNiceness(rt.proc.pid!);
    const own = base[0];
    assert.ok(base.length > 1 && own !== -10 && base.every((n) => n === own), `before deploy: ${base.join(',')}`);
    await rt.deploy(exampleFlows(peer.port));
    await waitFor(() => threadNiceness(rt!.proc.pid!).filter((n) => n === -10).length === 2, 15_000, 'two threads at niceness -10');
    const all = threadNiceness(rt.proc.pid!);
    assert.equal(all.filter((n) => n === own).length, all.length - 2, `the others stay at ${own}: ${all.join(',')}`);
    // and each says so in the log (the event reaches the main thread a moment after the change)
    await waitFor(() => /HAL thread runs at niceness -10/.test(rt!.log()) && /gate worker thread runs at niceness -10/.test(rt!.log()), 5000, 'both logged');
  });

  it('settings rtEdgeHalNice: 0 and rtEdgeGateNice: 0 leave every thread alone', async () => {
    peer = await startPeer('ok', 1);
    rt = await startNodeRed({ settings: { rtEdgeHalNice: 0, rtEdgeGateNice: 0 } });
    await rt.deploy(exampleFlows(peer.port));
    const r = rt;
    await waitFor(async () => (await r.get('/metrics')).text.includes('rtedge_gate_connected{node="gx_cmd"} 1'), 15_000, 'the gate link up');
    await waitFor(async () => (await r.get('/metrics')).text.includes('rtedge_hx711_samples_total{scale="scale1"}'), 15_000, 'the scale sampling');
    const all = threadNiceness(rt.proc.pid!);
    assert.ok(all.every((n) => n === all[0]), `all at the process's own niceness (${all[0]}): ${all.join(',')}`);
    assert.doesNotMatch(rt.log(), /runs at niceness/);
  });
});
