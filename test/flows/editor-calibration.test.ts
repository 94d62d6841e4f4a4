// The Node-RED editor, in Debian's headless Chromium (playwright-core), shows
// the calibration the scale is using: after a tare and a calibration done at
// run time from the example's inject nodes, the rt-scale edit dialog reads
// "zero ..., ... counts/g, from stored (calibrate ...)".
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser, Page } from 'playwright-core';

import { openEditor } from '../helpers/dashboard';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, waitFor } from '../helpers/util';

const example = join(repoRoot, 'examples', 'rt-hx711', '01 - Live weight from a simulated HX711.json');

describe('rt-scale edit dialog in the Node-RED editor (real browser)', function () {
  this.timeout(120_000);
  let rt: ChildRuntime | null = null;
  let browser: Browser | null = null;
  after(async () => {
    await browser?.close().catch(() => undefined);
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
  });

  it('shows the stored run-time calibration', async () => {
    rt = await startNodeRed();
    const r = rt;
    await r.deploy(JSON.parse(readFileSync(example, 'utf8')));
    const samples = async (): Promise<number> => Number(/^rtedge_hx711_samples_total\{scale="scale1"\} (\d+)/m.exec((await r.get('/metrics')).text)?.[1] ?? 0);
    await waitFor(async () => (await samples()) > 160, 15_000, 'the scale sampling for 2 s');
    const weight = async (): Promise<number> => Number(/^rtedge_hx711_weight_grams\{scale="scale1"\} (\S+)/m.exec((await r.get('/metrics')).text)?.[1]);
    const click = async (id: string): Promise<void> => assert.equal((await r.post(`/inject/${id}`, {})).status, 200);
    await click('inj1'); // container 40 g
    await waitFor(async () => Math.abs((await weight()) - 40) < 0.2, 8000, 'the container on the cell');
    await click('inj2'); // tare
    await waitFor(async () => Math.abs(await weight()) < 0.1, 8000, 'tared');
    await click('inj3'); // 100 g
    await waitFor(async () => Math.abs((await weight()) - 100) < 0.3, 8000, '100 g on the cell');
    await click('inj4'); // calibrate 100 g
    const view = await waitFor(
      async () => {
        const v = JSON.parse((await r.get('/rt-scale/scale1/calibration')).text) as { source: string; stored?: { how: string; zero: number; cpgMilli: number } };
        return v.stored?.how === 'calibrate' ? v : null;
      },
      8000,
      'the calibration stored',
    );

    // The editor, once it has loaded the flows (the scale config node is known).
    let page: Page;
    ({ browser, page } = await openEditor(r, 'scale1'));
    // Open the config node's edit dialog the way the pencil button next to the scale does.
    await page.evaluate("RED.editor.editConfig('', 'rt-scale', 'scale1')");
    const field = page.locator('#rt-scale-calibration');
    await field.waitFor({ timeout: 20_000 });
    await page.waitForFunction("/counts\\/g/.test(document.querySelector('#rt-scale-calibration').textContent)", undefined, { timeout: 20_000 });
    const text = (await field.innerText()).trim();
    const stored = view!.stored!;
    assert.ok(text.startsWith(`zero ${stored.zero}, ${stored.cpgMilli / 1000} counts/g, from stored (calibrate `), `dialog shows: ${text}`);
  });
});
