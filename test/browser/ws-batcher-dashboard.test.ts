// The dosing station's 80 SPS weight trace through rt-ws-batcher, as shipped
// (examples/rt-dosing/02 - Dosing station dashboard.json: the scale's samples
// go straight from its worker to the batcher, the Dashboard 2.0 ui-template
// loads the node's client and canvas renderer), in a real Node-RED process and
// Debian's Chromium (background throttling off, rAF at the display rate).
//
// - >= 1200 points visible while 80 SPS arrive, requestAnimationFrame
//   intervals p95 <= 17 ms over 30 s (the bound), measured in the page;
// - the page's JS heap after a forced GC does not grow over 2 minutes (bound
//   1 MB), and a leak control shows the bound would catch a page that kept
//   every batch it received.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';

import type { Browser, CDPSession, Page } from 'playwright-core';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, waitFor } from '../helpers/util';
import { heapAfterGc, launchUnthrottled, measureRaf } from '../helpers/ws-browser';

/* eslint-disable @typescript-eslint/no-explicit-any */
const EXAMPLE = 'examples/rt-dosing/02 - Dosing station dashboard.json';
const PATH = '/ws/dosing';
const HEAP_BOUND = 1024 * 1024;

describe('dosing weight trace through rt-ws-batcher (Dashboard 2.0 ui-template, Chromium)', function () {
  this.timeout(300_000);
  let rt: ChildRuntime | null = null;
  let browser: Browser | null = null;
  let page: Page;
  let cdp: CDPSession;

  const trace = (): Promise<any> =>
    page.evaluate((p) => {
      const t = (globalThis as any).rtWsTraces?.[p];
      return t ? { client: { ...t.client.stats }, renderer: { ...t.renderer.stats } } : null;
    }, PATH);

  before(async () => {
    rt = await startNodeRed();
    await rt.deploy(JSON.parse(readFileSync(join(repoRoot, EXAMPLE), 'utf8')) as object[]);
    await waitFor(() => /Started flows/.test(rt!.log()), 20_000, 'flows started');
    assert.doesNotMatch(rt.log(), /\[error\]/, rt.log());
    browser = await launchUnthrottled();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(`${rt.url}/dashboard/dosing`, { waitUntil: 'domcontentloaded' });
    cdp = await page.context().newCDPSession(page);
    // 20 s window at 80 SPS: >= 1200 points once 15 s have arrived
    await page
      .waitForFunction((p) => ((globalThis as any).rtWsTraces?.[p]?.renderer.stats.visiblePoints ?? 0) >= 1200, PATH, { timeout: 60_000, polling: 500 })
      .catch(async (e: Error) => {
        throw new Error(`${e.message}\ntrace: ${JSON.stringify(await trace())}\npage: ${(await page.locator('body').innerText()).slice(0, 800)}\nlog: ${rt!.log().slice(-1500)}`);
      });
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    await rt?.kill('SIGKILL');
    rt?.cleanup();
  });

  it('>= 1200 points visible while 80 SPS arrive: requestAnimationFrame intervals p95 <= 17 ms over 30 s', async () => {
    const t0 = await trace();
    const raf = await measureRaf(page, 30_000);
    const t1 = await trace();
    const sps = (t1.client.points - t0.client.points) / 30;
    assert.ok(sps >= 70 && sps <= 90, `80 samples a second arrive: ${sps.toFixed(1)}/s`);
    assert.ok(t0.renderer.visiblePoints >= 1200 && t1.renderer.visiblePoints >= 1200, `visible points ${t0.renderer.visiblePoints} -> ${t1.renderer.visiblePoints}`);
    const draws = t1.renderer.draws - t0.renderer.draws;
    assert.ok(draws <= raf.n + 2, `at most one draw per animation frame: ${draws} draws, ${raf.n} frames`);
    const batches = t1.client.batches - t0.client.batches;
    assert.ok(draws >= 30 * 10 && draws <= batches, `it draws when batches arrive, and only then: ${draws} draws, ${batches} batches in 30 s`);
    assert.equal(t1.client.unexpectedGaps, 0);
    const drawMean = (t1.renderer.drawMs - t0.renderer.drawMs) / Math.max(1, draws);
    console.log(`      rAF intervals over 30 s: n ${raf.n}, p50 ${raf.p50.toFixed(2)}, p95 ${raf.p95.toFixed(2)}, p99 ${raf.p99.toFixed(2)} ms; ${t1.renderer.visiblePoints} points visible, ${sps.toFixed(1)} SPS; draw mean ${drawMean.toFixed(2)} ms; load ${loadavg()[0].toFixed(1)}`);
    assert.ok(
      raf.p95 <= 17,
      `rAF interval p95 ${raf.p95.toFixed(2)} ms (p50 ${raf.p50.toFixed(2)}, p99 ${raf.p99.toFixed(2)}, max ${raf.max.toFixed(1)}, ${raf.over17} of ${raf.n} over 17 ms); ` +
        `the trace's own draw: mean ${drawMean.toFixed(2)} ms, max ${t1.renderer.drawMsMax.toFixed(1)} ms; host load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`,
    );
  });

  it('the JS heap after a forced GC does not grow over 2 minutes (and would, if batches leaked)', async () => {
    const h0 = await heapAfterGc(cdp);
    const b0 = (await trace()).client.batches;
    const samples: number[] = [];
    for (let i = 0; i < 4; i++) {
      await page.waitForTimeout(30_000);
      samples.push((await heapAfterGc(cdp)) - h0);
    }
    const t1 = await trace();
    const growth = samples[samples.length - 1];
    const batches = t1.client.batches - b0;
    assert.ok(t1.renderer.visiblePoints >= 1200, 'still drawing the full window');
    // Leak control, 15 s: the same page keeping every batch it receives.
    const hL0 = await heapAfterGc(cdp);
    const bL0 = t1.client.batches;
    await page.evaluate((p) => {
      const g = globalThis as any;
      g.__rtLeak = [];
      g.__rtLeakOff = g.rtWsTraces[p].client.on('batch', (b: unknown) => g.__rtLeak.push(b));
    }, PATH);
    await page.waitForTimeout(15_000);
    const hL1 = await heapAfterGc(cdp);
    const bL1 = (await trace()).client.batches;
    await page.evaluate(() => {
      const g = globalThis as any;
      g.__rtLeakOff();
      g.__rtLeak = null;
    });
    const perBatch = (hL1 - hL0) / (bL1 - bL0);
    const leak2min = perBatch * batches;
    const msg = `heap growth over 2 min ${(growth / 1024).toFixed(0)} KB (at 30 s steps: ${samples.map((s) => (s / 1024).toFixed(0)).join(', ')} KB), ${batches} batches; a page keeping every batch grows ${perBatch.toFixed(0)} B/batch, ${(leak2min / 1048576).toFixed(2)} MB in 2 min`;
    console.log(`      ${msg}`);
    assert.ok(leak2min >= 2 * HEAP_BOUND, `the bound catches a leak: ${msg}`);
    assert.ok(growth < HEAP_BOUND, msg);
  });
});
