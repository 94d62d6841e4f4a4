// SIGTERM of the Node-RED process mid-dose: Node-RED closes the flows, the
// dosing node and the scale close, and the motor is off before the process
// exits. The simulated backend records every motor duty change in a file
// (test hook rtEdgeMotorTrace), which outlives the process.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, tempDir, waitFor } from '../helpers/util';

const example = join(repoRoot, 'examples', 'rt-dosing', '01 - Dose a target on the simulated scale.json');

describe('rt-dosing: SIGTERM of the Node-RED process mid-dose', function () {
  this.timeout(60_000);
  let rt: ChildRuntime | null = null;
  const tmp = tempDir('rtedge-motor-');
  after(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
    tmp.cleanup();
  });

  it('turns the motor off before the process exits', async () => {
    const trace = join(tmp.dir, 'motor.trace');
    rt = await startNodeRed({ settings: { rtEdgeTestHooks: true, rtEdgeMotorTrace: trace } });
    await rt.deploy(JSON.parse(readFileSync(example, 'utf8')));
    const r = rt;
    const duties = (): number[] => (existsSync(trace) ? readFileSync(trace, 'utf8').trim().split('\n').filter(Boolean).map(Number) : []);
    const samples = async (): Promise<number> => Number(/^rtedge_hx711_samples_total\{scale="exd_scale"\} (\d+)/m.exec((await r.get('/metrics')).text)?.[1] ?? 0);
    await waitFor(async () => (await samples()) > 160, 15_000, 'the scale sampling for 2 s (settled and stable)');
    const res = await r.post('/inject/exd_100', {}); // dose 100 g: several seconds of motor
    assert.equal(res.status, 200, res.text);
    await waitFor(() => duties().some((d) => d > 0), 10_000, 'the motor running');
    const running = duties();
    assert.ok(running[running.length - 1] > 0, `motor on mid-dose: ${running.join(',')}`);
    const exit = await r.kill('SIGTERM', 15_000);
    assert.equal(exit.signal ?? 'exit', 'exit', `exited by itself after SIGTERM (code ${exit.code}, signal ${exit.signal})`);
    const after = duties();
    assert.equal(after[after.length - 1], 0, `last motor duty before exit: ${after.join(',')}`);
    assert.ok(after.length > running.length, 'the stop was written after the signal');
  });
});
