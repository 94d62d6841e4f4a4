// Fifty full redeploys of every shipped example in one Node-RED process: each
// redeploy closes and restarts every node (worker threads, the gate socket,
// the serial port, the journal file, timers). Afterwards the process has as
// many threads and open file descriptors as after the first deploy, and no
// MaxListenersExceeded warning was printed.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';

import { allExampleFlows } from '../helpers/all-examples';
import { DoorSim } from '../helpers/door-sim';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { type PtyPair, ptyPair } from '../helpers/pty';
import { freePort, sleep, waitFor } from '../helpers/util';

const count = (dir: string): number => readdirSync(dir).length;

describe('50 redeploys of all examples in one Node-RED process (Linux /proc)', function () {
  this.timeout(240_000);
  let rt: ChildRuntime | null = null;
  let pty: PtyPair | null = null;
  let sim: DoorSim | null = null;
  before(function () {
    if (process.platform !== 'linux') this.skip(); // counts threads and fds in /proc
  });
  after(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
    await sim?.stop();
    await pty?.dispose();
  });

  it('leave threads and file descriptors flat and print no MaxListenersExceeded', async () => {
    const pair = (pty = await ptyPair());
    sim = new DoorSim({ path: pair.b, baudRate: 9600 });
    await sim.start();
    const flows = await allExampleFlows({ gatePort: await freePort(), serialPath: pair.a });
    rt = await startNodeRed({ settings: { logging: { console: { level: 'warn' } } } });
    const r = rt;
    const pid = r.proc.pid!;
    const gateUp = async (): Promise<boolean> => /^rtedge_gate_connected\{node="gx_cmd"\} 1$/m.test((await r.get('/metrics')).text);
    await r.deploy(flows);
    await waitFor(gateUp, 15_000, 'the gate link up after the first deploy');
    await sleep(1500);
    const threads0 = count(`/proc/${pid}/task`);
    const fds0 = count(`/proc/${pid}/fd`);
    let retried = 0;
    for (let i = 1; i <= 50; i++) {
      // a changed name on every rt-* node, as an edit in the editor would make
      const edited = flows.map((n) => (String(n.type).startsWith('rt-') ? { ...n, name: `${String(n.name ?? '')} ${i}`.trim() } : n));
      await r.deploy(edited).catch(async (e: Error) => {
        // CI saw one deploy's connection closed ("other side closed") without a response, once, not reproduced here.
        // A runtime that died fails at once, with how it ended and its log; a live one gets one more try of the same
        // deploy (a full deploy is idempotent), said in the output, and a second failure fails the test.
        const why = `deploy ${i} failed: ${e.message} (${String((e as { cause?: unknown }).cause ?? '')})`;
        await sleep(200);
        if (r.proc.exitCode !== null || r.proc.signalCode !== null) throw new Error(`${why}; the runtime exited (${r.proc.exitCode ?? r.proc.signalCode})\n${r.log().slice(-4000)}`);
        retried++;
        console.log(`      ${why}; the runtime is alive: deploying again`);
        await r.deploy(edited);
      });
    }
    await waitFor(gateUp, 15_000, 'the gate link up after the last deploy');
    // Closed workers and sockets go away asynchronously: wait until the counts settle.
    let threads = 0;
    let fds = 0;
    await waitFor(
      async () => {
        await sleep(500);
        threads = count(`/proc/${pid}/task`);
        fds = count(`/proc/${pid}/fd`);
        return threads <= threads0 && fds <= fds0 + 2;
      },
      20_000,
      'threads and fds back to the first deploy',
    ).catch((e: Error) => {
      throw new Error(`${e.message}: threads ${threads0} -> ${threads}, fds ${fds0} -> ${fds}`);
    });
    assert.ok(retried <= 1, `${retried} deploys needed a second try`);
    assert.doesNotMatch(r.log(), /MaxListenersExceeded/);
    assert.doesNotMatch(r.log(), /\[error\]/, r.log().slice(-3000));
  });
});
