// npm run screenshots: the pictures of the README, made from this working tree.
//
// Starts Node-RED (node_modules/node-red) with a temporary user dir, this
// tree's nodes (nodesDir = repo root) and one flow: the dosing station
// dashboard example (examples/rt-dosing/02 - Dosing station dashboard.json),
// on the simulated scale. Opens the editor and the dashboard page in Debian's
// headless Chromium (playwright-core, no downloaded browser), doses twice from
// the page's Start button so the weight chart shows a curve and the table has
// rows, then writes
//   docs/images/dosing-dashboard.png   /dashboard/dosing
//   docs/images/editor.png             the editor showing the dosing flow
// Needs a build (`npm run build`; done here when dist/ is missing, or always
// with --build) and `apt-get install chromium` (CHROMIUM_PATH overrides
// /usr/bin/chromium). Nothing outside the repo is deployed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const EXAMPLE = 'examples/rt-dosing/02 - Dosing station dashboard.json';
const OUT = join(root, 'docs', 'images');
const VIEWPORT = { width: 1280, height: 800 };
const DASH_VIEWPORT = { width: 1280, height: 1000 };
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const DOSES = [100, 50]; // grams, dosed one after the other from the page

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => console.log(`screenshots: ${s}`);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(what, fn, ms) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

async function main() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  if (process.argv.includes('--build') || !existsSync(join(root, 'dist', 'nodes'))) {
    log('npm run build');
    const b = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
    if (b.status !== 0) process.exit(b.status ?? 1);
  }

  const userDir = mkdtempSync(join(tmpdir(), 'rtedge-shots-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const settings = {
    uiPort: port,
    uiHost: '127.0.0.1',
    flowFile: 'flows.json',
    nodesDir: [root],
    httpNodeRoot: '/',
    credentialSecret: false,
    logging: { console: { level: 'info', metrics: false, audit: false } },
    editorTheme: { tours: false, projects: { enabled: false } },
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
  };
  writeFileSync(join(userDir, 'settings.js'), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  writeFileSync(join(userDir, 'flows.json'), '[]');
  const flows = JSON.parse(readFileSync(join(root, EXAMPLE), 'utf8'));

  let out = '';
  const red = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', userDir, '--settings', join(userDir, 'settings.js')], {
    cwd: root,
    env: { ...process.env, NODE_RED_ENABLE_TOURS: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  red.stdout.on('data', (d) => (out += d));
  red.stderr.on('data', (d) => (out += d));
  let browser = null;
  try {
    await waitFor('Node-RED to start', async () => (await fetch(`${url}/flows`)).status === 200, 60_000);
    const dep = await fetch(`${url}/flows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full', 'Node-RED-API-Version': 'v1' },
      body: JSON.stringify(flows),
    });
    if (dep.status >= 300) throw new Error(`deploy failed: ${dep.status} ${await dep.text()}`);
    await waitFor('the flows to start', async () => /Started flows/.test(out), 30_000);
    if (/\[error\]/.test(out)) throw new Error(`Node-RED logged an error:\n${out}`);
    log(`Node-RED ${url} with ${EXAMPLE}`);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
    });
    const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1, colorScheme: 'light' });

    // The editor first, so its debug sidebar receives the dose results.
    const editor = await context.newPage();
    await editor.goto(`${url}/`, { waitUntil: 'domcontentloaded' });
    await editor.waitForFunction(`!!(window.RED && RED.nodes && RED.nodes.node('ds_dosing') && document.querySelector('#red-ui-workspace-chart svg g.red-ui-flow-node'))`, undefined, { timeout: 60_000 });
    await editor.evaluate(() => {
      const R = window.RED;
      R.workspaces.show('ds_tab');
      R.sidebar.show('debug');
      // the whole flow in the canvas, and our palette category in view
      R.actions.invoke('core:zoom-out');
      R.actions.invoke('core:zoom-out');
      const chart = document.getElementById('red-ui-workspace-chart');
      if (chart) chart.scrollLeft = chart.scrollTop = 0;
      const header = [...document.querySelectorAll('.red-ui-palette-header')].find((h) => /realtime edge/.test(h.textContent ?? ''));
      header?.scrollIntoView({ block: 'start' });
    });

    const dash = await context.newPage();
    await dash.setViewportSize(DASH_VIEWPORT); // tall enough for the results table
    await dash.goto(`${url}/dashboard/dosing`, { waitUntil: 'domcontentloaded' });
    await dash.getByText('Live weight').first().waitFor({ timeout: 60_000 });
    await dash.waitForTimeout(3000); // some flat weight before the first dose
    for (const [i, g] of DOSES.entries()) {
      const input = dash.getByLabel('Target (g)');
      await input.fill('');
      await input.fill(String(g));
      await input.press('Enter');
      const typed = await input.inputValue();
      if (Number(typed) !== g) throw new Error(`the target input reads ${typed}, not ${g}`);
      await dash.waitForTimeout(600);
      await dash.getByRole('button', { name: /Start dose/ }).click();
      log(`dosing ${g} g`);
      await dash.getByText(new RegExp(`^${i + 1} doses, `)).waitFor({ timeout: 90_000 });
      await dash.waitForTimeout(1500);
    }
    await dash.waitForTimeout(2000);
    mkdirSync(OUT, { recursive: true });
    const dashPng = join(OUT, 'dosing-dashboard.png');
    await dash.screenshot({ path: dashPng });
    log(`wrote ${relative(root, dashPng)}`);

    await editor.bringToFront();
    await editor.waitForTimeout(1000);
    const editorPng = join(OUT, 'editor.png');
    await editor.screenshot({ path: editorPng });
    log(`wrote ${relative(root, editorPng)}`);
  } catch (e) {
    console.error(out.slice(-3000));
    throw e;
  } finally {
    await browser?.close().catch(() => undefined);
    red.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => (red.kill('SIGKILL'), r()), 15_000);
      red.once('exit', () => (clearTimeout(t), r()));
    });
    rmSync(userDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`screenshots: ${e.stack ?? e}`);
  process.exit(1);
});
