// Where the metrics are served, as settings.js says (rtEdgeMetricsPath,
// rtEdgeMetricsAdmin): validated, a bad value logged with a fallback, false =
// off; and never over another module's GET route for the same path, whichever
// was mounted first. Uses the express that Node-RED itself uses, on a real
// HTTP server (the process-wide cases run in a child runtime:
// test/flows/metrics-clash.test.ts).
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { dirname } from 'node:path';

import { metricsEndpoint, otherGetRoute } from '../../../nodes/shared/metrics-endpoint';
import type { HttpApp, NodeAPI } from '../../../nodes/shared/red-types';
import { DROPPED_DEFAULT_METRICS, runtimeMetrics } from '../../../nodes/shared/registry';

type Express = HttpApp & ((req: unknown, res: unknown) => void) & { listen(port: number, host: string, cb: () => void): Server };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const express = require(require.resolve('express', { paths: [dirname(require.resolve('node-red/package.json'))] })) as () => Express;

interface Fake {
  RED: NodeAPI;
  app: Express;
  logs: string[];
}
function fakeRed(settings: Record<string, unknown>, admin?: Express): Fake {
  const logs: string[] = [];
  const app = express();
  const log = (level: string) => (m: unknown) => logs.push(`[${level}] ${String(m)}`);
  const RED = { settings, httpNode: app, httpAdmin: admin, log: { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') } } as unknown as NodeAPI;
  return { RED, app, logs };
}

async function serve(app: Express, fn: (get: (path: string) => Promise<{ status: number; text: string }>) => Promise<void>): Promise<void> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  try {
    await fn(async (path) => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: r.status, text: await r.text() };
    });
  } finally {
    await new Promise((r) => server.close(r));
  }
}

const other = (_req: unknown, res: { send(s: string): void }): void => res.send('other_exporter_up 1\n');

describe('metrics endpoint settings and clashes', () => {
  describe('metricsEndpoint(settings)', () => {
    it('default: /metrics under httpNodeRoot; rtEdgeMetricsAdmin adds httpAdminRoot; httpNodeRoot false moves it there', () => {
      assert.deepEqual(metricsEndpoint({}), { path: '/metrics', onNode: true, onAdmin: false, warnings: [] });
      assert.deepEqual(metricsEndpoint(undefined), { path: '/metrics', onNode: true, onAdmin: false, warnings: [] });
      assert.deepEqual(metricsEndpoint({ rtEdgeMetricsPath: true }), { path: '/metrics', onNode: true, onAdmin: false, warnings: [] });
      assert.deepEqual(metricsEndpoint({ rtEdgeMetricsAdmin: true }), { path: '/metrics', onNode: true, onAdmin: true, warnings: [] });
      assert.deepEqual(metricsEndpoint({ httpNodeRoot: false }), { path: '/metrics', onNode: false, onAdmin: true, warnings: [] });
    });

    it('rtEdgeMetricsPath moves it (a trailing slash dropped); false turns it off everywhere', () => {
      assert.equal(metricsEndpoint({ rtEdgeMetricsPath: '/rtedge/metrics' }).path, '/rtedge/metrics');
      assert.equal(metricsEndpoint({ rtEdgeMetricsPath: '/prom-1/m.v2_x~/' }).path, '/prom-1/m.v2_x~');
      assert.deepEqual(metricsEndpoint({ rtEdgeMetricsPath: false, rtEdgeMetricsAdmin: true }), { path: false, onNode: false, onAdmin: false, warnings: [] });
      assert.deepEqual(metricsEndpoint({ rtEdgeMetricsPath: false, httpNodeRoot: false }), { path: false, onNode: false, onAdmin: false, warnings: [] });
    });

    it('a bad value is one clear warning and a sensible path, never a throw', () => {
      const slash = metricsEndpoint({ rtEdgeMetricsPath: 'rtedge/metrics' });
      assert.equal(slash.path, '/rtedge/metrics');
      assert.match(slash.warnings.join('\n'), /rtEdgeMetricsPath "rtedge\/metrics" does not start with '\/': serving the metrics at \/rtedge\/metrics/);
      for (const bad of ['', '/', '/:x', '/metrics/*', '/a b', '/..', '/a//b', 42, 10n, {}, ['/m'], () => '/m', null]) {
        const e = metricsEndpoint({ rtEdgeMetricsPath: bad });
        if (bad === null) {
          assert.deepEqual(e, { path: '/metrics', onNode: true, onAdmin: false, warnings: [] }, 'null: the default');
          continue;
        }
        assert.equal(e.path, '/metrics', String(bad));
        assert.equal(e.warnings.length, 1, String(bad));
        assert.match(e.warnings[0], /^rtEdgeMetricsPath .* is not valid: .*or false to turn the metrics endpoint off; serving the metrics at \/metrics$/);
      }
      for (const off of ['false', 'off', ' Off ', 'none', 'disabled']) {
        const e = metricsEndpoint({ rtEdgeMetricsPath: off, rtEdgeMetricsAdmin: true });
        assert.deepEqual([e.path, e.onNode, e.onAdmin], [false, false, false], off);
        assert.match(e.warnings.join('\n'), /is a string: taken as false \(metrics endpoint off\); write rtEdgeMetricsPath: false/);
      }
      const admin = metricsEndpoint({ rtEdgeMetricsAdmin: 'yes' });
      assert.equal(admin.onAdmin, false);
      assert.match(admin.warnings.join('\n'), /rtEdgeMetricsAdmin "yes" is not true or false: taken as false/);
    });
  });

  describe('otherGetRoute(app, path, ours)', () => {
    it('sees another GET (or all) route for the same path, case and trailing slash aside; not ours, not other methods, not patterns', () => {
      const app = express();
      const mine = (): void => undefined;
      const ours = new Set([mine]);
      assert.equal(otherGetRoute(app, '/metrics', ours), false, 'no router yet');
      app.get('/metrics', mine as never);
      (app as unknown as { post(p: string, h: unknown): void }).post('/metrics', other);
      app.get('/:anything', other as never);
      app.get('/metrics2', other as never);
      assert.equal(otherGetRoute(app, '/metrics', ours), false);
      app.get('/Metrics/', other as never);
      assert.equal(otherGetRoute(app, '/metrics', ours), true);
      assert.equal(otherGetRoute(app, '/metrics', ours, true), true, 'mounted after ours');
      const app2 = express();
      (app2 as unknown as { all(p: string, h: unknown): void }).all('/metrics', other);
      app2.get('/metrics', mine as never);
      assert.equal(otherGetRoute(app2, '/metrics', ours), true);
      assert.equal(otherGetRoute(app2, '/metrics', ours, true), false, 'mounted before ours: it already answered or declined');
    });
  });

  describe('runtimeMetrics(RED) on a real express app', () => {
    it('serves the registry on GET /metrics and logs where; without prom-client\'s *_total gauges', async () => {
      const { RED, app, logs } = fakeRed({});
      runtimeMetrics(RED).gauge('rtedge_test_level_ratio', 'test').set(0.5);
      await serve(app, async (get) => {
        const r = await get('/metrics');
        assert.equal(r.status, 200);
        assert.match(r.text, /^rtedge_test_level_ratio 0.5$/m);
        assert.match(r.text, /^# TYPE nodejs_active_handles gauge$/m, 'the per-type gauges stay');
        for (const name of DROPPED_DEFAULT_METRICS) assert.doesNotMatch(r.text, new RegExp(`^${name}`, 'm'));
      });
      assert.deepEqual(logs, ['[info] [rtedge] metrics at GET /metrics (httpNodeRoot)']);
    });

    it('rtEdgeMetricsPath false: nothing mounted, one info line', async () => {
      const { RED, app, logs } = fakeRed({ rtEdgeMetricsPath: false, rtEdgeMetricsAdmin: true });
      assert.equal(runtimeMetrics(RED).path, false);
      await serve(app, async (get) => assert.equal((await get('/metrics')).status, 404));
      assert.deepEqual(logs, ['[info] [rtedge] metrics endpoint off (rtEdgeMetricsPath: false; rtEdgeMetricsAdmin has no effect)']);
    });

    it('a bad rtEdgeMetricsPath: a warning, and served at /metrics', async () => {
      const { RED, app, logs } = fakeRed({ rtEdgeMetricsPath: 1880, httpNodeRoot: '/api/' });
      assert.equal(runtimeMetrics(RED).path, '/metrics');
      await serve(app, async (get) => assert.equal((await get('/metrics')).status, 200));
      assert.equal(logs.length, 2, logs.join('\n'));
      assert.match(logs[0], /^\[warn\] \[rtedge\] rtEdgeMetricsPath 1880 is not valid: .*; serving the metrics at \/metrics$/);
      assert.equal(logs[1], '[info] [rtedge] metrics at GET /api/metrics (httpNodeRoot)');
    });

    it('another GET /metrics mounted before: ours is not mounted; the log names the path and how to move ours', async () => {
      const { RED, app, logs } = fakeRed({});
      app.get('/metrics', other as never);
      runtimeMetrics(RED);
      await serve(app, async (get) => assert.equal((await get('/metrics')).text, 'other_exporter_up 1\n'));
      assert.equal(logs.length, 1);
      assert.match(logs[0], /^\[warn\] \[rtedge\] GET \/metrics \(httpNodeRoot\) is already served by another module .*rtEdgeMetricsPath: '\/rtedge\/metrics'.*rtEdgeMetricsPath: false turns them off/);
    });

    it('another GET /metrics mounted after: ours passes requests on (one warning per episode), and serves again once it is gone', async () => {
      const { RED, app, logs } = fakeRed({});
      runtimeMetrics(RED).gauge('rtedge_test_level_ratio', 'test').set(1);
      app.get('/metrics', other as never);
      await serve(app, async (get) => {
        for (let i = 0; i < 3; i++) assert.equal((await get('/metrics')).text, 'other_exporter_up 1\n');
        assert.equal(logs.filter((l) => /is also served by another module/.test(l)).length, 1, logs.join('\n'));
        // the other handler removed (as an http in node is on redeploy)
        const stack = (app as unknown as { _router: { stack: Array<{ route?: { stack: Array<{ handle: unknown }> } }> } })._router.stack;
        stack.splice(stack.findIndex((l) => l.route?.stack.some((h) => h.handle === other)), 1);
        assert.match((await get('/metrics')).text, /^rtedge_test_level_ratio 1$/m);
        assert.match(logs[logs.length - 1], /serves the rtedge metrics again/);
      });
    });

    it('under httpAdminRoot the same: another GET /metrics there keeps it, and the log names httpAdminRoot', async () => {
      const admin = express();
      admin.get('/metrics', other as never);
      const { RED, logs } = fakeRed({ httpNodeRoot: false, httpAdminRoot: '/admin' }, admin);
      runtimeMetrics(RED);
      await serve(admin, async (get) => assert.equal((await get('/metrics')).text, 'other_exporter_up 1\n'));
      assert.equal(logs.length, 1);
      assert.match(logs[0], /^\[warn\] \[rtedge\] GET \/admin\/metrics \(httpAdminRoot\) is already served by another module/);
    });
  });
});
