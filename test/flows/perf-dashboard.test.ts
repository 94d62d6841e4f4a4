// The shipped perf dashboard (examples/rt-perf-monitor/02 - Performance dashboard.json) in a Node-RED
// process, seen in a real headless Chromium (Debian's /usr/bin/chromium via
// playwright-core): the page renders the event-loop chart, the memory gauge
// and the slowest-nodes table with the busy function node in it, and the
// health report arrives when its button is pressed.
import assert from 'node:assert/strict';

import { type DashboardSession, openDashboard } from '../helpers/dashboard';

describe('perf dashboard in a real browser', function () {
  this.timeout(120_000);
  let s: DashboardSession | null = null;
  after(async () => {
    await s?.close();
  });

  it('renders event-loop lag, memory, the slowest nodes and a health report', async () => {
    s = await openDashboard('rt-perf-monitor/02 - Performance dashboard.json', '/perf');
    const { page } = s;
    await page.getByText('Event loop and memory').first().waitFor({ timeout: 30_000 });
    await page.getByText('RSS').first().waitFor();
    // the busy "work 3 ms" function node shows up in the slowest-nodes table with its p99
    const row = page.locator('tr').filter({ hasText: 'work 3 ms' }).first();
    await row.waitFor({ timeout: 30_000 }).catch(async (e: Error) => {
      throw await s!.failure(e);
    });
    const cells = (await row.innerText()).split(/\s+/);
    // columns: node, type, messages, p50, p99, max (ms); the median is the node's own 3 ms (the tail
    // may hold a descheduling on a loaded machine, so p99 is only checked to be no lower). The node busies until
    // Date.now() passes now + 3, which lasts between 2 and 3 ms (millisecond ticks): a p50 of 2.43 ms was seen in CI
    const [p50, p99, max] = cells.slice(-3).map(Number) as [number, number, number];
    assert.ok(p50 >= 2 && p50 < 50, `the 3 ms node's p50 is about 3 ms: ${cells.join(' ')}`);
    assert.ok(p99 >= p50 && max >= p99, `p50 <= p99 <= max: ${cells.join(' ')}`);
    // the event-loop chart has drawn (a canvas with a size)
    const canvas = page.locator('canvas').first();
    await canvas.waitFor();
    const box = await canvas.boundingBox();
    assert.ok(box && box.width > 50 && box.height > 50, 'the chart is drawn');
    await page.getByRole('button', { name: /Health report/ }).click();
    await page.getByText(/healthy: \d+ violation/).waitFor({ timeout: 10_000 });
  });
});
