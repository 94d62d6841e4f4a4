// The package as a user gets it: `npm pack` of this tree, installed with
// `npm install <tgz>` into a fresh Node-RED user dir (no devDependencies, no
// nodesDir), next to @flowfuse/node-red-dashboard, and run by a Node-RED of
// the same version as this test leg's (4.1 on Node 20, 5 on Node 22)
// installed on its own, as a user's is. Through the admin API: every rt-*
// type is loaded from the installed module; Import > Examples offers every
// example and each one deploys without an error in the log. Then the dosing
// station example is imported from the editor's menu (Import > Examples) in
// Debian chromium, deployed with the Deploy button, and a dose is run from its
// dashboard page, with no edits.
//
// Needs the npm registry (the package's dependencies and Node-RED are
// installed from it, as a user's are).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser } from 'playwright-core';

import { doseFromDashboard, launchChromium } from '../helpers/dashboard';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, sleep, tempDir, waitFor } from '../helpers/util';

interface Pkg {
  name: string;
  version: string;
  'node-red': { nodes: Record<string, string> };
  devDependencies: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as Pkg;
const nodeRedVersion = (JSON.parse(readFileSync(require.resolve('node-red/package.json'), 'utf8')) as { version: string }).version;

function npm(args: string[], cwd: string): string {
  return execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
    timeout: 600_000,
  });
}

interface NodeSet {
  id: string;
  module: string;
  version?: string;
  types: string[];
  enabled: boolean;
  err?: string;
}

describe(`the packed package installed into a fresh Node-RED ${nodeRedVersion} user dir (Node ${process.version})`, function () {
  this.timeout(900_000);
  const tmp = tempDir('rtedge-install-');
  const userDir = join(tmp.dir, 'user');
  const home = join(tmp.dir, 'node-red');
  let rt: ChildRuntime | null = null;
  let browser: Browser | null = null;

  before(() => {
    // the tarball, from the build `npm test` just made (no scripts: no rebuild under running tests)
    const out = npm(['pack', '--json', '--ignore-scripts', '--pack-destination', tmp.dir], repoRoot);
    const packed = JSON.parse(out.slice(out.search(/^\[/m))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tgz = join(tmp.dir, packed[0]!.filename);
    const files = packed[0]!.files.map((f) => f.path);
    assert.ok(
      files.some((f) => f.startsWith('examples/')),
      'the tarball holds the examples',
    );
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('bench/')), 'no tests in the tarball');
    // a user's Node-RED, installed on its own (same version as this leg's)
    mkdirSync(home, { recursive: true });
    mkdirSync(userDir, { recursive: true });
    writeFileSync(join(home, 'package.json'), JSON.stringify({ name: 'nr-home', version: '1.0.0', private: true }));
    npm(['install', '--no-package-lock', `node-red@${nodeRedVersion}`], home);
    // the user dir: what `npm install` in ~/.node-red (or Manage palette) does
    writeFileSync(join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', description: 'A Node-RED Project', version: '0.0.1', private: true }));
    npm(['install', '--omit=dev', tgz, `@flowfuse/node-red-dashboard@${pkg.devDependencies['@flowfuse/node-red-dashboard']}`], userDir);
    const installed = readdirSync(join(userDir, 'node_modules'));
    assert.ok(!installed.includes('mocha') && !installed.includes('typescript'), 'no devDependencies in the user dir');
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    if (rt) await rt.kill('SIGTERM');
    rt?.cleanup();
    tmp.cleanup();
  });

  it('Node-RED starts and loads every rt-* type from the installed module', async () => {
    rt = await startNodeRed({
      userDir,
      red: join(home, 'node_modules', 'node-red', 'red.js'),
      settings: { nodesDir: [], logging: { console: { level: 'info', metrics: false, audit: false } } },
      startTimeoutMs: 90_000,
    });
    assert.match(rt.log(), new RegExp(`Node-RED version: v${nodeRedVersion.replace(/\./g, '\\.')}`), rt.log());
    assert.doesNotMatch(rt.log(), /cannot be loaded on this version|\[error\]/, rt.log());
    const r = await fetch(`${rt.url}/nodes`, { headers: { accept: 'application/json' } });
    assert.equal(r.status, 200);
    const sets = ((await r.json()) as NodeSet[]).filter((s) => s.module === pkg.name);
    const types = new Map<string, NodeSet>();
    for (const s of sets) for (const t of s.types) types.set(t, s);
    for (const t of Object.keys(pkg['node-red'].nodes)) {
      const s = types.get(t);
      assert.ok(s, `${t} is not registered: ${JSON.stringify(sets)}`);
      assert.ok(s.enabled && !s.err, `${t}: ${JSON.stringify(s)}`);
      assert.equal(s.version, pkg.version);
    }
  });

  it('Import > Examples offers every example and each one deploys with no error in the log', async () => {
    assert.ok(rt);
    const base = `/library/examples/flows/${pkg.name}/`;
    const dirs = JSON.parse((await rt.get(base)).text) as string[];
    const shipped = readdirSync(join(repoRoot, 'examples')).sort();
    assert.deepEqual([...dirs].sort(), shipped);
    let count = 0;
    for (const d of dirs) {
      const entries = JSON.parse((await rt.get(`${base}${encodeURIComponent(d)}/`)).text) as Array<{ fn: string }>;
      assert.ok(entries.length > 0, d);
      for (const { fn } of entries) {
        const r = await rt.get(`${base}${encodeURIComponent(d)}/${encodeURIComponent(fn)}`);
        assert.equal(r.status, 200, `${d}/${fn}: ${r.text}`);
        const nodes = JSON.parse(r.text) as Array<Record<string, unknown>>;
        // as Import does: a tab-less example goes onto a tab of its own
        const tab = { id: `import_${count}`, type: 'tab', label: fn };
        const flows = nodes.some((n) => n.type === 'tab') ? nodes : [tab, ...nodes.map((n) => (n.z === undefined && 'wires' in n ? { ...n, z: tab.id } : n))];
        const before = rt.log().length;
        await rt.deploy(flows);
        await sleep(1500);
        const log = rt.log().slice(before);
        assert.deepEqual(
          log.split('\n').filter((l) => /\[error\]/.test(l)),
          [],
          `${d}/${fn}:\n${log}`,
        );
        assert.doesNotMatch(log, /Waiting for missing types|unknown type/i, `${d}/${fn}:\n${log}`);
        count++;
      }
    }
    const onDisk = shipped.reduce((n, d) => n + readdirSync(join(repoRoot, 'examples', d)).length, 0);
    assert.equal(count, onDisk);
  });

  it('the dosing station example, imported from the editor menu and deployed with its button, doses from its dashboard page', async () => {
    assert.ok(rt);
    const r = rt;
    await r.deploy([]);
    browser = await launchChromium();
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${r.url}/`, { waitUntil: 'domcontentloaded' });
    await page.waitForFunction('!!(window.RED && RED.nodes && RED.view && RED.workspaces && RED.workspaces.active())', undefined, { timeout: 90_000 });
    // Menu > Import > Examples > @rtedge/node-red-realtime-edge > rt-dosing > 02 - Dosing station dashboard > Import
    await page.locator('#red-ui-header-button-sidemenu').click();
    await page.getByText('Import', { exact: true }).first().click();
    await page.locator('#red-ui-clipboard-dialog-import-tabs li').filter({ hasText: 'Examples' }).click();
    const tree = page.locator('#red-ui-clipboard-dialog-import-tabs-content .red-ui-treeList-label');
    for (const label of [pkg.name, 'rt-dosing']) await tree.filter({ hasText: label }).first().click();
    // the editor enables Import once it has fetched the selected example; on a loaded machine a click that
    // lands while the folder is still unfolding selects nothing, so the example is clicked again (at most 3 times)
    const importButton = page.locator('#red-ui-clipboard-dialog-ok');
    for (let attempt = 1; ; attempt++) {
      await tree.filter({ hasText: '02 - Dosing station dashboard' }).first().click();
      const enabled = await importButton
        .and(page.locator(':not(.ui-button-disabled)'))
        .waitFor({ timeout: 10_000 })
        .then(() => true, () => false);
      if (enabled) break;
      assert.ok(attempt < 3, 'Import stays disabled after selecting the example three times');
    }
    await importButton.click();
    await page.waitForFunction('RED.nodes.filterNodes({ type: "rt-dosing" }).length === 1', undefined, { timeout: 10_000 });
    const mark = r.log().length;
    await page.locator('#red-ui-header-button-deploy').click();
    await waitFor(() => /Started flows/.test(r.log().slice(mark)), 60_000, 'flows started after Deploy');
    assert.deepEqual(pageErrors, [], 'no exception in the editor');
    const flows = JSON.parse((await r.get('/flows')).text) as Array<{ type: string }>;
    assert.ok(flows.some((n) => n.type === 'rt-dosing') && flows.some((n) => n.type === 'ui-base'), 'the example is deployed');
    // the dashboard page, a 25 g dose on simulated hardware
    const dash = await browser.newPage();
    await dash.goto(`${r.url}/dashboard/dosing`, { waitUntil: 'domcontentloaded' });
    await dash.getByText('Live weight').first().waitFor({ timeout: 60_000 });
    const text = await doseFromDashboard(dash, 25, async (e) => new Error(`${e.message}\npage: ${(await dash.locator('body').innerText()).slice(0, 1500)}\nlog: ${r.log().slice(-2000)}`));
    assert.match(text, /\b25\b/, text);
    assert.match(text, /\bok\b|under|over/, `the dose finished: ${text}`);
    assert.ok(Math.abs(Number(text.split(' ')[3]) - 25) < 0.5, `about 25 g dosed: ${text}`);
    assert.doesNotMatch(r.log(), /\[error\]/, r.log());
  });
});
