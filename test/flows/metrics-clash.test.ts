// Another exporter already serves /metrics (node-red-contrib-prometheus-exporter
// mounts its own RED.httpNode.get('/metrics')): ours must not shadow it, in
// either load order. A fixture module that mounts GET /metrics like those
// exporters do (test/runtime/fixtures/other-exporter.ts) is loaded as a
// package through nodesDir next to ours, in a real Node-RED process:
// - it mounts first (module load, listed before us in nodesDir): we do not
//   mount there and say so in the log;
// - we mount first (it is listed after us, or it mounts when its config node
//   is deployed, as node-red-contrib-prometheus-exporter does): our handler
//   passes the request on, and says so once;
// in every case a scraper of /metrics gets the other exporter's text, and
// with rtEdgeMetricsPath moved ours is served there, with no warning.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, sleep, tempDir, waitFor } from '../helpers/util';

const gateFlow = [
  { id: 'tab', type: 'tab', label: 'm' },
  { id: 'ep', type: 'rt-gate-endpoint', version: 1, host: '127.0.0.1', port: 9, template: 'OPEN {gate}\\r\\n', ack: '^OK', timeout: 5000, inflight: 8, backoffMin: 250, backoffMax: 10000, keepAlive: true },
  { id: 'cmd', z: 'tab', type: 'rt-gate-command', version: 1, endpoint: 'ep', queueLimit: 64, wires: [[]] },
];
const exporterNode = { id: 'fx', type: 'fixture-exporter' };

const OURS = /^rtedge_gate_connected\{node="cmd"\} [01]$/m;
const THEIRS = /^fixture_exporter_up 1$/m;
const ALREADY = /\[rtedge\] GET \/metrics \(httpNodeRoot\) is already served by another module.*rtEdgeMetricsPath/;
const ALSO = /\[rtedge\] GET \/metrics \(httpNodeRoot\) is also served by another module.*rtEdgeMetricsPath/g;

/** A package dir for nodesDir whose one node file is the compiled fixture. */
function fixturePackage(dir: string): string {
  const pkg = join(dir, 'fixture-other-exporter');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'fixture-other-exporter', version: '1.0.0', 'node-red': { nodes: { 'fixture-exporter': 'exporter.js' } } }));
  const compiled = join(repoRoot, 'dist', 'test', 'runtime', 'fixtures', 'other-exporter.js');
  writeFileSync(join(pkg, 'exporter.js'), `module.exports = require(${JSON.stringify(compiled)});\n`);
  writeFileSync(
    join(pkg, 'exporter.html'),
    `<script type="text/javascript">RED.nodes.registerType('fixture-exporter', { category: 'config', defaults: {} });</script>\n`,
  );
  return pkg;
}

describe('GET /metrics when another exporter serves the same path', function () {
  this.timeout(90_000);
  let rt: ChildRuntime | null = null;
  let tmp: { dir: string; cleanup(): void } | null = null;
  let pkg = '';
  before(() => {
    tmp = tempDir('rtedge-fixture-');
    pkg = fixturePackage(tmp.dir);
  });
  after(() => tmp?.cleanup());
  afterEach(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
      rt = null;
    }
  });

  const start = (o: { first: 'theirs' | 'ours'; when: 'load' | 'deploy'; metricsPath?: string }): Promise<ChildRuntime> =>
    startNodeRed({
      flows: o.when === 'deploy' ? [...gateFlow, exporterNode] : gateFlow,
      settings: {
        nodesDir: o.first === 'theirs' ? [pkg, repoRoot] : [repoRoot, pkg],
        fixtureExporter: { when: o.when },
        ...(o.metricsPath ? { rtEdgeMetricsPath: o.metricsPath } : {}),
      },
    });

  const loadOrder = (log: string): string[] =>
    [...log.matchAll(/fixture exporter: GET|\[rtedge\] (?:metrics at GET|GET \/metrics \(httpNodeRoot\) is already)/g)].map((m) => (m[0].startsWith('fixture') ? 'theirs' : 'ours'));

  it('theirs mounted first (loaded before ours): a scraper gets theirs; ours is not mounted, and the log says how to move it', async () => {
    rt = await start({ first: 'theirs', when: 'load' });
    assert.deepEqual(loadOrder(rt.log()), ['theirs', 'ours'], rt.log());
    const r = await rt.get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.text, THEIRS);
    assert.doesNotMatch(r.text, /rtedge_/);
    assert.match(rt.log(), ALREADY);
  });

  it('ours mounted first (theirs loaded after ours): a scraper gets theirs; ours passes it on and says so once', async () => {
    rt = await start({ first: 'ours', when: 'load' });
    assert.equal(loadOrder(rt.log())[0], 'ours', rt.log());
    for (let i = 0; i < 3; i++) {
      const r = await rt.get('/metrics');
      assert.equal(r.status, 200);
      assert.match(r.text, THEIRS);
      assert.doesNotMatch(r.text, /rtedge_/);
    }
    // (the runtime's log comes through a pipe: the warning may reach us after the answer did)
    await waitFor(() => [...rt!.log().matchAll(ALSO)].length >= 1, 5000, 'the pass-on warning', 50);
    await sleep(200);
    assert.equal([...rt.log().matchAll(ALSO)].length, 1, rt.log());
    assert.doesNotMatch(rt.log(), ALREADY);
  });

  it('ours mounted first, theirs when its config node is deployed (node-red-contrib-prometheus-exporter): a scraper gets theirs', async () => {
    rt = await start({ first: 'theirs', when: 'deploy' });
    const log = rt.log;
    await waitFor(() => /fixture exporter: GET/.test(log()), 10_000, 'the fixture exporter mounted at deploy', 50);
    assert.deepEqual(loadOrder(rt.log()), ['ours', 'theirs'], rt.log());
    const r = await rt.get('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.text, THEIRS);
    assert.doesNotMatch(r.text, /rtedge_/);
    // (the runtime's log comes through a pipe: the warning may reach us after the answer did)
    await waitFor(() => [...rt!.log().matchAll(ALSO)].length >= 1, 5000, 'the pass-on warning', 50);
    await sleep(200);
    assert.equal([...rt.log().matchAll(ALSO)].length, 1, rt.log());
  });

  for (const first of ['theirs', 'ours'] as const) {
    it(`with rtEdgeMetricsPath moved (${first} loaded first): theirs on /metrics, ours on the moved path, no clash warning`, async () => {
      rt = await start({ first, when: 'load', metricsPath: '/rtedge/metrics' });
      const theirs = await rt.get('/metrics');
      assert.equal(theirs.status, 200);
      assert.match(theirs.text, THEIRS);
      const ours = await rt.get('/rtedge/metrics');
      assert.equal(ours.status, 200);
      assert.match(ours.text, OURS);
      assert.doesNotMatch(ours.text, /fixture_exporter/);
      assert.match(rt.log(), /\[rtedge\] metrics at GET \/rtedge\/metrics \(httpNodeRoot\)/);
      assert.doesNotMatch(rt.log(), /is (already|also) served by/);
    });
  }
});
