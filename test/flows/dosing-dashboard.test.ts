// The shipped dosing station (flows/dosing-station.json) on the Node-RED
// Dashboard, in a Node-RED process, driven from a real headless Chromium
// (Debian's /usr/bin/chromium through playwright-core): the page renders,
// a target is typed, Start is pressed, the weight moves, and the dose
// finishes with a result row in the table.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromium } = require('playwright-core') as typeof import('playwright-core');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

describe('dosing station dashboard in a real browser', function () {
  this.timeout(180_000);
  let rt: ChildRuntime | null = null;
  let browser: import('playwright-core').Browser | null = null;
  before(function () {
    // CI installs Debian's chromium (.ci/run); a missing browser is a failure there, not a skip.
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
  });

  it('starts a dose from the page and shows its result row', async () => {
    rt = await startNodeRed();
    const flows = JSON.parse(readFileSync(join(repoRoot, 'flows', 'dosing-station.json'), 'utf8')) as object[];
    await rt.deploy(flows);
    await waitFor(() => /Started flows/.test(rt!.log()), 20_000, 'flows started');
    assert.doesNotMatch(rt.log(), /\[error\]/, rt.log());
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    const page = await browser.newPage();
    await page.goto(`${rt.url}/dashboard/dosing`, { waitUntil: 'domcontentloaded' });
    await page.getByText('Dosing station').first().waitFor({ timeout: 30_000 });
    await page.getByText('Live weight').first().waitFor();
    // set the target: 30 g
    const input = page.getByLabel('Target (g)');
    await input.waitFor({ timeout: 15_000 });
    await input.fill('30');
    await input.press('Enter');
    await page.waitForTimeout(500);
    await page.getByRole('button', { name: /Start dose/ }).click();
    // progress shows up, then the result row
    await page.getByText(/coarse|fine|taring|settling/).first().waitFor({ timeout: 15_000 });
    const row = page.locator('tr').filter({ hasText: /ok|under|over|aborted/ }).first();
    await row.waitFor({ timeout: 60_000 }).catch(async (e: Error) => {
      await page.screenshot({ path: join(rt!.userDir, '..', 'dosing-dashboard-failure.png'), fullPage: true }).catch(() => undefined);
      throw new Error(`${e.message}\npage text: ${(await page.locator('body').innerText()).replace(/\s+/g, ' ').slice(0, 1500)}\nlog: ${rt!.log().slice(-1500)}`);
    });
    const text = (await row.innerText()).replace(/\s+/g, ' ');
    assert.match(text, /\b30\b/, `the row shows the 30 g target: ${text}`);
    assert.match(text, /\bok\b|under|over/, `the dose finished (not aborted): ${text}`);
    const finalG = Number(text.split(' ')[3]);
    assert.ok(Math.abs(finalG - 30) < 0.5, `about 30 g dosed: ${text}`);
    await page.getByText(/^1 doses, /).waitFor({ timeout: 10_000 });
    await page.getByText(/g of 30 g in/).waitFor({ timeout: 10_000 });
  });
});
