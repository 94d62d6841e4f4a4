// The shipped dosing station (examples/rt-dosing/02 - Dosing station dashboard.json) on the Node-RED
// Dashboard, in a Node-RED process, driven from a real headless Chromium
// (Debian's /usr/bin/chromium through playwright-core): the page renders,
// a target is typed, Start is pressed, the weight moves, and the dose
// finishes with a result row in the table.
import assert from 'node:assert/strict';

import { type DashboardSession, doseFromDashboard, openDashboard } from '../helpers/dashboard';

describe('dosing station dashboard in a real browser', function () {
  this.timeout(180_000);
  let s: DashboardSession | null = null;
  after(async () => {
    await s?.close();
  });

  it('starts a dose from the page and shows its result row', async () => {
    // Updates the page receives for the weight chart (Dashboard 2 socket.io frames "msg-input:<widget id>").
    const chartUpdates: number[] = [];
    s = await openDashboard('rt-dosing/02 - Dosing station dashboard.json', '/dosing', {
      beforeGoto: (p) =>
        p.on('websocket', (ws) =>
          ws.on('framereceived', (f) => {
            if (String(f.payload).includes('"msg-input:ds_chart"')) chartUpdates.push(Date.now());
          }),
        ),
    });
    const { page } = s;
    await page.getByText('Dosing station').first().waitFor({ timeout: 30_000 });
    await page.getByText('Live weight').first().waitFor();
    // The chart is fed a downsampled stream (checklist 34): live, but at most 4 updates a second.
    await page.waitForTimeout(5000);
    const last5s = chartUpdates.filter((t) => t > Date.now() - 5000).length;
    assert.ok(last5s >= 5 && last5s <= 22, `weight chart updates in 5 s: ${last5s} (live, <= 4/s)`);
    // set the target: 30 g, start, wait for the result row
    const text = await doseFromDashboard(page, 30, (e) => s!.failure(e));
    assert.match(text, /\b30\b/, `the row shows the 30 g target: ${text}`);
    assert.match(text, /\bok\b|under|over/, `the dose finished (not aborted): ${text}`);
    const finalG = Number(text.split(' ')[3]);
    assert.ok(Math.abs(finalG - 30) < 0.5, `about 30 g dosed: ${text}`);
    await page.getByText(/^1 doses, /).waitFor({ timeout: 10_000 });
    await page.getByText(/g of 30 g in/).waitFor({ timeout: 10_000 });
  });
});
