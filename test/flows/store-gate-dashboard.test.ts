// The shipped store gate flow (flows/store-gate.json, the same as
// examples/rt-journey-tracker/01) on its own simulated inputs, only its ports
// moved to free ones: the in-flow scripted shoppers publish to the embedded
// broker, the ingress and the tracker turn them into gate commands to the
// in-flow stand-in gate controller and journeys in the JSONL file; then its
// dashboard page (/dashboard/store) in Debian's headless Chromium shows the
// door, the gate queue, the ingress drops per source and the journeys chart.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser } from 'playwright-core';

import { launchChromium } from '../helpers/dashboard';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { freePort, repoRoot, waitFor } from '../helpers/util';

type Flow = Record<string, unknown>;

describe('store gate flow on its simulated inputs, and its dashboard in a real browser', function () {
  this.timeout(150_000);
  let rt: ChildRuntime | null = null;
  let browser: Browser | null = null;
  after(async () => {
    await browser?.close().catch(() => undefined);
    await rt?.kill('SIGTERM');
    rt?.cleanup();
  });

  it('the example is the shipped flow', () => {
    const a = readFileSync(join(repoRoot, 'flows', 'store-gate.json'), 'utf8');
    const b = readFileSync(join(repoRoot, 'examples', 'rt-journey-tracker', '01 - Store gate end to end.json'), 'utf8');
    assert.equal(a, b);
  });

  it('runs out of the box: journeys in the file, gate commands acknowledged, the page shows door, gate, drops and journeys', async () => {
    const gatePort = await freePort();
    const mqttPort = await freePort();
    const flows = (JSON.parse(readFileSync(join(repoRoot, 'flows', 'store-gate.json'), 'utf8')) as Flow[]).map((n) => {
      if (n.id === 'sg_ep') return { ...n, port: gatePort };
      if (n.id === 'sg_sim_in') return { ...n, port: String(gatePort) };
      if (n.id === 'sg_broker') return { ...n, port: mqttPort };
      if (n.id === 'sg_core_broker') return { ...n, port: String(mqttPort) };
      if (n.id === 'sg_port') return { ...n, path: '/dev/rtedge-no-such-tty' };
      if (n.id === 'sg_player_tick') return { ...n, repeat: '0.8' };
      if (n.id === 'sg_tick') return { ...n, repeat: '2', onceDelay: '1' };
      return n;
    });
    rt = await startNodeRed();
    await rt.deploy(flows);
    await waitFor(() => /Started flows/.test(rt!.log()), 20_000, 'flows started');
    const dir = join(rt.userDir, 'journeys');
    const lines = (): Array<Record<string, unknown>> =>
      existsSync(dir)
        ? readdirSync(dir)
            .filter((f) => f.startsWith('store-'))
            .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean))
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [];
    await waitFor(() => lines().filter((j) => j.outcome === 'complete').length >= 3 && lines().some((j) => j.outcome === 'returned-store'), 60_000, 'journeys from the simulated shoppers', 250).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(lines())}\n${rt!.log().slice(-3000)}`);
    });
    // (a walk published before the core mqtt out had connected is seen from its middle: only whole walks are judged)
    const js = lines().filter((j) => j.pos !== null || j.outcome === 'returned-store');
    assert.ok(js.filter((j) => j.outcome === 'complete' && j.auth !== null && j.gate_opened === true).length >= 3, JSON.stringify(js));
    for (const j of js) {
      if (j.outcome === 'complete') assert.equal(j.gate_opened, true, JSON.stringify(j));
      if (j.outcome === 'returned-store') assert.equal(j.gate_opened, false, JSON.stringify(j));
    }
    const m = (await rt.get('/metrics')).text;
    assert.match(m, /rtedge_gate_commands_total\{[^}]*result="ok"[^}]*\} [1-9]/, 'the stand-in gate controller acknowledged');
    assert.match(m, /rtedge_tracker_gate_unauthorized_total\{[^}]*\} [1-9]/);
    assert.doesNotMatch(rt.log(), /\[error\]/, rt.log());

    browser = await launchChromium();
    const page = await browser.newPage();
    await page.goto(`${rt.url}/dashboard/store`, { waitUntil: 'domcontentloaded' });
    const fail = async (e: Error): Promise<Error> => new Error(`${e.message}\npage: ${(await page.locator('body').innerText()).replace(/\s+/g, ' ').slice(0, 1500)}`);
    try {
      await page.getByText('Gate commands in flight').first().waitFor({ timeout: 30_000 });
      await page.getByText('Queue delay p99').first().waitFor();
      // the p99 text is filled from the gate results: "<x> ms (<n> commands)"
      await page.getByText(/\d+\.\d+ ms \(\d+ commands\)/).first().waitFor({ timeout: 20_000 });
      // commands in flight: results come back within milliseconds, so it stays near 0 (it does not count results as commands)
      const body = (await page.locator('body').innerText()).replace(/\s+/g, ' ');
      const inflight = Number(/Gate commands in flight (\d+)/.exec(body)?.[1] ?? NaN);
      assert.ok(inflight >= 0 && inflight <= 3, `in flight ${inflight}: ${body.slice(0, 300)}`);
      // the drops table is read from /metrics in the browser: one row per ingress source
      for (const src of ['tracks', 'events', 'acc-mqtt']) await page.locator('td', { hasText: new RegExp(`^${src}$`) }).first().waitFor({ timeout: 20_000 });
      // the door: the serial port is missing here, so its state is unknown (shown once it changes; the group is there)
      await page.getByText('Door').first().waitFor();
      const canvas = page.locator('canvas').first();
      await canvas.waitFor({ timeout: 20_000 });
      const box = await canvas.boundingBox();
      assert.ok(box && box.width > 50 && box.height > 50, 'the journeys chart is drawn');
    } catch (e) {
      throw await fail(e as Error);
    }
  });
});
