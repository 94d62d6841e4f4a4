// The perf monitor's default rules in a real Node-RED running every shipped
// example: on a healthy runtime the memory rule never fires (the old absolute
// RSS > 100 MB rule fired at once) and no rule is firing once it has settled;
// a real leak (a function node keeping 8 MB buffers) raises the memory alert.
import assert from 'node:assert/strict';

import { allExampleFlows } from '../helpers/all-examples';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { freePort, sleep, waitFor } from '../helpers/util';

const monitor = { id: 'pm_defaults', type: 'rt-perf-monitor', z: 'pm_defaults_tab', name: 'defaults', version: 1, mode: 'sampling', window: 1, period: 10, interval: 1, filter: '', defaultRules: true, rules: '[]', topN: 10, maxNodes: 200, wires: [[], ['pm_alert_log'], []] };
// every alert in the log, to say which rule fired
const alertLog = { id: 'pm_alert_log', type: 'function', z: 'pm_defaults_tab', func: "node.warn('ALERT ' + JSON.stringify(msg.payload)); return null;", outputs: 1, wires: [[]] };
const leak = [
  { id: 'leak_inj', type: 'inject', z: 'pm_defaults_tab', repeat: '0.25', once: false, topic: '', payload: '', payloadType: 'date', props: [{ p: 'payload' }], wires: [['leak_fn']] },
  { id: 'leak_fn', type: 'function', z: 'pm_defaults_tab', func: "const a = global.get('leak') || []; a.push(Buffer.alloc(8 * 1024 * 1024, 1)); global.set('leak', a); return null;", outputs: 1, wires: [[]] },
];

describe('rt-perf-monitor default rules on a healthy runtime running every example', function () {
  this.timeout(180_000);
  let rt: ChildRuntime | null = null;
  after(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
  });

  it('raise no alert while healthy, and the memory alert on a leak', async () => {
    rt = await startNodeRed();
    const r = rt;
    const base = [...(await allExampleFlows({ gatePort: await freePort(), serialPath: '/dev/rtedge-no-such-tty' })), { id: 'pm_defaults_tab', type: 'tab', label: 'defaults' }, monitor, alertLog];
    await r.deploy(base);
    const metric = async (re: RegExp): Promise<number> => Number(re.exec((await r.get('/metrics')).text)?.[1] ?? NaN);
    const alerts = (): Promise<number> => metric(/^rtedge_perf_alerts_total\{monitor="pm_defaults"\} (\S+)/m);
    await waitFor(async () => Number.isFinite(await alerts()), 15_000, 'the monitor running');
    await sleep(8000); // 8 intervals
    const rss = await metric(/^rtedge_perf_memory_rss_bytes\{monitor="pm_defaults"\} (\S+)/m);
    const fired = r.log().split('\n').filter((l) => /ALERT .*"state":"firing"/.test(l));
    // the memory rule never fires on a healthy runtime, whatever its size
    assert.deepEqual(fired.filter((l) => /"category":"memory"/.test(l)), [], `RSS ${(rss / 1048576).toFixed(0)} MB`);
    assert.ok(rss > 100 * 1048576, `RSS ${(rss / 1048576).toFixed(0)} MB: the old absolute 100 MB rule would have fired`);
    // the event-loop rule may see the deploy itself on a loaded machine with this 1 s interval (the default is 10 s,
    // so 3 intervals are 30 s), but nothing is firing once the runtime has settled
    await waitFor(async () => (await metric(/^rtedge_perf_alerts_firing\{monitor="pm_defaults"\} (\S+)/m)) === 0, 25_000, `no rule firing once settled: ${fired.join('\n')}`);
    // the whole healthy phase, settling included: still no memory alert
    const healthy = r.log();
    assert.deepEqual(healthy.split('\n').filter((l) => /ALERT .*"state":"firing".*"category":"memory"/.test(l)), [], 'no memory alert while healthy (settling included)');
    await r.deploy([...base, ...leak]);
    // the deploy restarted the monitor: its counter starts again (a counter reset); read it before the leak has grown
    await waitFor(async () => Number.isFinite(await alerts()), 15_000, 'the monitor running again');
    const before = await alerts();
    // only what the log says after the leak's deploy counts, and the counter is waited for, not read once
    const since = (): string => r.log().slice(healthy.length);
    await waitFor(() => /ALERT .*"state":"firing".*"category":"memory"/.test(since()), 30_000, 'the leak alerted');
    await waitFor(async () => (await alerts()) > before, 10_000, `the alert counted (was ${before})`);
    assert.match(since(), /ALERT .*"metric":"memory.rssGrowth"/);
  });
});
