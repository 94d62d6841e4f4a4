// The shipped perf dashboard (flows/perf-dashboard.json) in a Node-RED
// process, seen in a real headless Chromium (Debian's /usr/bin/chromium via
// playwright-core): the page renders the event-loop chart, the memory gauge
// and the slowest-nodes table with the busy function node in it, and the
// health report arrives when its button is pressed.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromium } = require('playwright-core') as typeof import('playwright-core');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

describe('perf dashboard in a real browser', function () {
  this.timeout(120_000);
  let rt: ChildRuntime | null = null;
  let browser: import('playwright-core').Browser | null = null;
  before(() => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
  });

  it('renders event-loop lag, memory, the slowest nodes and a health report', async () => {
    rt = await startNodeRed();
    await rt.deploy(JSON.parse(readFileSync(join(repoRoot, 'flows', 'perf-dashboard.json'), 'utf8')) as object[]);
    await waitFor(() => /Started flows/.test(rt!.log()), 20_000, 'flows started');
    assert.doesNotMatch(rt.log(), /\[error\]/, rt.log());
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    await page.goto(`${rt.url}/dashboard/perf`, { waitUntil: 'domcontentloaded' });
    await page.getByText('Event loop and memory').first().waitFor({ timeout: 30_000 });
    await page.getByText('RSS').first().waitFor();
    // the busy "work 3 ms" function node shows up in the slowest-nodes table with its p99
    const row = page.locator('tr').filter({ hasText: 'work 3 ms' }).first();
    await row.waitFor({ timeout: 30_000 }).catch(async (e: Error) => {
      throw new Error(`${e.message}\npage text: ${(await page.locator('body').innerText()).replace(/\s+/g, ' ').slice(0, 1500)}`);
    });
    const cells = (await row.innerText()).split(/\s+/);
    const p99 = Number(cells[cells.length - 2]);
    assert.ok(p99 >= 2.5 && p99 < 50, `the 3 ms node's p99 is about 3 ms: ${cells.join(' ')}`);
    // the event-loop chart has drawn (a canvas with a size)
    const canvas = page.locator('canvas').first();
    await canvas.waitFor();
    const box = await canvas.boundingBox();
    assert.ok(box && box.width > 50 && box.height > 50, 'the chart is drawn');
    await page.getByRole('button', { name: /Health report/ }).click();
    await page.getByText(/healthy: \d+ violation/).waitFor({ timeout: 10_000 });
  });
});
