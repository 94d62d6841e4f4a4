// Where GET /metrics is served: under httpNodeRoot by default; under
// httpAdminRoot when the node server is off (httpNodeRoot: false) or when
// settings.rtEdgeMetricsAdmin is true, and there adminAuth applies (a scraper
// needs a token whose user has the rt-metrics.read permission, or "read").
// rtEdgeMetricsPath: false turns it off; a bad value is logged and the
// runtime starts with the metrics at /metrics.
import assert from 'node:assert/strict';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcrypt = require('bcryptjs') as { hashSync(s: string, rounds: number): string };

const gateFlow = [
  { id: 'tab', type: 'tab', label: 'm' },
  { id: 'ep', type: 'rt-gate-endpoint', version: 1, host: '127.0.0.1', port: 9, template: 'OPEN {gate}\\r\\n', ack: '^OK', timeout: 5000, inflight: 8, backoffMin: 250, backoffMax: 10000, keepAlive: true },
  { id: 'cmd', z: 'tab', type: 'rt-gate-command', version: 1, endpoint: 'ep', queueLimit: 64, wires: [[]] },
];

describe('GET /metrics under httpNodeRoot or httpAdminRoot', function () {
  this.timeout(60_000);
  let rt: ChildRuntime | null = null;
  afterEach(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
      rt = null;
    }
  });

  it('with httpNodeRoot: false it is served under httpAdminRoot', async () => {
    rt = await startNodeRed({ flows: gateFlow, settings: { httpNodeRoot: false, httpAdminRoot: '/admin' }, startedBy: 'log' });
    const m = await fetch(`${rt.url}/admin/metrics`);
    const text = await m.text();
    assert.equal(m.status, 200);
    assert.match(text, /^rtedge_gate_connected\{node="cmd"\} [01]$/m);
    assert.match(text, /^process_cpu_user_seconds_total /m);
    assert.equal((await fetch(`${rt.url}/metrics`)).status, 404);
  });

  it('with rtEdgeMetricsAdmin and adminAuth it needs a token with rt-metrics.read', async () => {
    const hash = bcrypt.hashSync('secret-pw', 8);
    rt = await startNodeRed({
      flows: gateFlow,
      settings: {
        httpNodeRoot: '/api',
        rtEdgeMetricsAdmin: true,
        adminAuth: {
          type: 'credentials',
          users: [
            { username: 'prom', password: hash, permissions: ['rt-metrics.read'] },
            { username: 'nobody', password: hash, permissions: ['flows.read'] },
          ],
        },
      },
      startedBy: 'log',
    });
    const url = rt.url;
    const token = async (user: string, scope: string): Promise<string> => {
      const r = await fetch(`${url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username: user, password: 'secret-pw' }),
      });
      assert.equal(r.status, 200, await r.clone().text());
      return ((await r.json()) as { access_token: string }).access_token;
    };
    assert.equal((await fetch(`${url}/metrics`)).status, 401, 'no token: refused');
    const other = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${await token('nobody', 'flows.read')}` } });
    assert.equal(other.status, 401, 'a user without the permission: refused');
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${await token('prom', 'rt-metrics.read')}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /^rtedge_gate_connected\{node="cmd"\} [01]$/m);
    // and still under httpNodeRoot, without the admin login
    const node = await fetch(`${url}/api/metrics`);
    assert.equal(node.status, 200);
    assert.match(await node.text(), /rtedge_gate_connected/);
  });

  it('rtEdgeMetricsPath: false serves it nowhere (with rtEdgeMetricsAdmin too), and says so in the log', async () => {
    rt = await startNodeRed({ flows: gateFlow, settings: { httpAdminRoot: '/admin', rtEdgeMetricsPath: false, rtEdgeMetricsAdmin: true }, startedBy: 'log' });
    assert.equal((await fetch(`${rt.url}/metrics`)).status, 404);
    assert.equal((await fetch(`${rt.url}/admin/metrics`)).status, 404);
    assert.match(rt.log(), /\[info\] \[rtedge\] metrics endpoint off \(rtEdgeMetricsPath: false; rtEdgeMetricsAdmin has no effect\)/);
  });

  it('a bad rtEdgeMetricsPath is a warning, not a crash: the runtime starts and serves /metrics', async () => {
    rt = await startNodeRed({ flows: gateFlow, settings: { rtEdgeMetricsPath: '/metrics/:all' }, startedBy: 'log' });
    const m = await fetch(`${rt.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(await m.text(), /^rtedge_gate_connected\{node="cmd"\} [01]$/m);
    assert.match(rt.log(), /\[warn\] \[rtedge\] rtEdgeMetricsPath "\/metrics\/:all" is not valid: .*; serving the metrics at \/metrics/);
  });
});
