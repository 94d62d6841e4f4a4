// rt-gate-command in a real Node-RED process, talking to the example's
// simulated gate controller (core TCP nodes) on a free port: results and
// GET /metrics values.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { freePort, repoRoot, waitFor } from '../helpers/util';

describe('rt-gate-command in a Node-RED process', function () {
  this.timeout(60_000);
  let rt: ChildRuntime | null = null;
  after(async () => {
    if (rt) {
      await rt.kill('SIGTERM');
      rt.cleanup();
    }
  });

  it('the example opens gates through the simulated controller; /metrics shows results, p99 and max', async () => {
    rt = await startNodeRed();
    const port = await freePort();
    const nodes = JSON.parse(readFileSync(join(repoRoot, 'examples', 'rt-gate-command', '01 - Open a gate from an inject.json'), 'utf8')) as Array<Record<string, unknown>>;
    const flows: object[] = [{ id: 'tab', type: 'tab', label: 'gate' }];
    for (const n of nodes) {
      if (n.type === 'rt-gate-endpoint') flows.push({ ...n, port });
      else if (n.type === 'tcp in') flows.push({ ...n, z: 'tab', port: String(port) });
      else if (n.id === 'gx_inject1') flows.push({ ...n, z: 'tab', repeat: '0.2' }); // a command every 200 ms
      else flows.push({ ...n, z: 'tab' });
    }
    await rt.deploy(flows);
    const value = (text: string, name: string, labels: string): number => {
      const m = text.match(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm'));
      return m ? Number(m[1]) : NaN;
    };
    let text = '';
    await waitFor(
      async () => {
        text = (await rt!.get('/metrics')).text;
        return value(text, 'rtedge_gate_commands_total', 'node="gx_cmd",result="ok"') >= 5;
      },
      20_000,
      '5 gate commands acknowledged',
    );
    assert.equal(value(text, 'rtedge_gate_commands_total', 'node="gx_cmd",result="error"'), 0);
    assert.equal(value(text, 'rtedge_gate_commands_total', 'node="gx_cmd",result="timeout"'), 0);
    assert.equal(value(text, 'rtedge_gate_connected', 'node="gx_cmd"'), 1);
    const count = value(text, 'rtedge_gate_send_latency_seconds_count', 'node="gx_cmd"');
    assert.ok(count >= 5);
    const max = value(text, 'rtedge_gate_send_latency_max_seconds', 'node="gx_cmd"');
    const p99 = value(text, 'rtedge_gate_send_latency_p99_seconds', 'node="gx_cmd"');
    assert.ok(max > 0 && max < 5, `max ${max}`);
    assert.ok(p99 > 0 && p99 <= max * 1.0001, `p99 ${p99} <= max ${max}`);
    assert.ok(value(text, 'rtedge_gate_queue_delay_max_seconds', 'node="gx_cmd"') >= 0);
    assert.match(text, /rtedge_gate_queue_delay_seconds_bucket\{node="gx_cmd",le="0.001"\} \d+/);
    assert.doesNotMatch(rt.log(), /\[error\]/);
  });
});
