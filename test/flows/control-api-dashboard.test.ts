// The control API's dashboard page (examples/rt-control-plant/01 - HTTP control
// API with dashboard.json, /dashboard/control) in Debian's headless Chromium
// through playwright-core: it renders the live temperatures, duties and RPM,
// and its buttons' writes reach the plant (read back through the HTTP API).
import assert from 'node:assert/strict';

import { type DashboardSession, openDashboard } from '../helpers/dashboard';
import { waitFor } from '../helpers/util';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('control API dashboard in a real browser', function () {
  this.timeout(180_000);
  let s: DashboardSession | null = null;
  after(async () => {
    await s?.close();
  });

  it('renders the live state, and a control write from the page reaches the plant', async () => {
    const chartUpdates: number[] = [];
    s = await openDashboard('rt-control-plant/01 - HTTP control API with dashboard.json', '/control', {
      beforeGoto: (p) =>
        p.on('websocket', (ws) =>
          ws.on('framereceived', (f) => {
            if (String(f.payload).includes('"msg-input:ca_chart"')) chartUpdates.push(Date.now());
          }),
        ),
    });
    const { page, rt } = s;
    const api = async (path: string): Promise<Json> => JSON.parse((await rt.get(path)).text) as Json;
    try {
      await page.getByText('Heaters and motor').first().waitFor({ timeout: 30_000 });
      await page.getByText('Heater duty').first().waitFor();
      // the duties line is filled from the plant's state (40 % set at start)
      await page.getByText(/set 40 \/ 40, targets 220 \/ 220/).first().waitFor({ timeout: 15_000 });
      await page.waitForTimeout(3000);
      const recent = chartUpdates.filter((t) => t > Date.now() - 3000).length;
      assert.ok(recent >= 2 && recent <= 30, `temperature chart updates in 3 s: ${recent} (live, 2 series at 2/s)`);

      assert.equal((await api('/api/data')).motor.rpm_set, 0);
      await page.getByRole('button', { name: /Motor 1200 rpm/ }).click();
      await waitFor(async () => (await api('/api/data')).motor.rpm_set === 1200, 10_000, 'the plant got rpm 1200 from the page');
      await page.getByText(/^200 \{"ok":true/).first().waitFor({ timeout: 10_000 });
      await waitFor(async () => (await api('/api/data')).motor.rpm > 100, 10_000, 'the motor turns');

      await page.getByRole('button', { name: /^Log on/ }).click();
      await waitFor(async () => (await api('/api/status')).logging.on === true, 10_000, 'logging on from the page');
      await page.getByRole('button', { name: /^Log off/ }).click();
      await waitFor(async () => (await api('/api/status')).logging.on === false, 10_000, 'logging off from the page');

      await page.getByRole('button', { name: /Relay 1 on/ }).click();
      await waitFor(async () => (await api('/api/gpio')).pins.relay1 === true, 10_000, 'relay 1 on from the page');

      await page.getByRole('button', { name: /Motor stop/ }).click();
      await waitFor(async () => (await api('/api/data')).motor.rpm_set === 0, 10_000, 'motor stopped from the page');
    } catch (e) {
      throw await s.failure(e as Error);
    }
  });
});
