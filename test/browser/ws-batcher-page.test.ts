// The rt-ws-batcher browser modules in Debian's Chromium (playwright-core), on
// a page like the README's, against a real `ws` server that speaks the wire
// protocol (test/helpers/ws-proto-server.ts) and serves the modules from
// dist/: reload -> resume with the last seq; a hidden page gets nothing, then a
// snapshot when visible; a cut connection comes back by itself.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import type { Browser, Page } from 'playwright-core';

import { sleep, waitFor } from '../helpers/util';
import { launchUnthrottled, VISIBILITY_OVERRIDE } from '../helpers/ws-browser';
import { ProtoServer } from '../helpers/ws-proto-server';
import { tracePage } from '../helpers/ws-trace-page';

/* eslint-disable @typescript-eslint/no-explicit-any */
const clientDir = join(__dirname, '..', '..', 'nodes', 'rt-ws-batcher', 'client');

describe('rt-ws-batcher browser client in Chromium (protocol server)', function () {
  this.timeout(90_000);
  let srv: ProtoServer;
  let browser: Browser;
  let page: Page;
  let stopFeed = (): void => undefined;
  let base: string;

  before(async () => {
    browser = await launchUnthrottled();
  });
  after(async () => {
    await browser?.close();
  });
  beforeEach(async () => {
    srv = new ProtoServer({
      ring: 256,
      files: { '/live/client.js': join(clientDir, 'rt-ws-client.js'), '/live/rt-ws-canvas.js': join(clientDir, 'rt-ws-canvas.js') },
      pages: { '/trace.html': tracePage('/live') },
    });
    await srv.listen();
    base = `http://127.0.0.1:${srv.port}`;
    page = await browser.newPage();
    await page.addInitScript(VISIBILITY_OVERRIDE);
    page.on('pageerror', (e) => console.error('page error:', e.message));
  });
  afterEach(async () => {
    stopFeed();
    await page?.close();
    await srv.close();
  });

  const stats = (): Promise<any> => page.evaluate(() => ({ ...(globalThis as any).rt.client.stats, draws: (globalThis as any).rt.renderer.stats.draws, visible: (globalThis as any).rt.renderer.stats.visiblePoints }));

  it('draws the live trace; a reload resumes from the last seq (missed batches replayed, no snapshot, no gap)', async () => {
    stopFeed = srv.feed('scale/weight', 80);
    await page.goto(`${base}/trace.html`);
    await page.waitForFunction(() => (globalThis as any).rt?.client.stats.batches > 20, undefined, { timeout: 15_000 });
    const before = await stats();
    assert.ok(before.draws > 0 && before.visible > 0, `drawn: ${JSON.stringify(before)}`);
    assert.equal(srv.history[0].format, 'bin');
    assert.equal(srv.history[0].resume, null);
    await page.reload();
    await page.waitForFunction(() => (globalThis as any).rt?.client.stats.batches > 10, undefined, { timeout: 15_000 });
    const h = srv.history[1];
    assert.ok(h.resume !== null && h.resume >= before.lastSeq, `reconnected with resume=${h.resume} (was at ${before.lastSeq})`);
    const after = await stats();
    assert.equal(after.snapshots, 0, 'resumed inside the ring: no snapshot');
    assert.equal(after.gaps, 0);
    assert.equal(after.unexpectedGaps, 0);
    const first = await page.evaluate(() => (globalThis as any).rt.client.stats.lastSeq - (globalThis as any).rt.client.stats.batches + 1);
    assert.equal(first, h.resume! + 1, 'the first batch after the reload is the one after the stored seq');
  });

  it('a hidden page gets nothing, then a snapshot when visible again', async () => {
    stopFeed = srv.feed('scale/weight', 80);
    await page.goto(`${base}/trace.html`);
    await page.waitForFunction(() => (globalThis as any).rt?.client.stats.batches > 5, undefined, { timeout: 15_000 });
    await page.evaluate(() => (globalThis as any).__rtSetHidden(true));
    await waitFor(() => [...srv.conns].some((c) => c.hidden), 5000, 'server sees the page hidden');
    await sleep(100); // frames already on the wire
    const hidden0 = await stats();
    await sleep(1000);
    const hidden1 = await stats();
    assert.equal(hidden1.frames, hidden0.frames, 'no frame while hidden');
    await page.evaluate(() => (globalThis as any).__rtSetHidden(false));
    await page.waitForFunction((n) => (globalThis as any).rt.client.stats.snapshots > n && (globalThis as any).rt.client.stats.batches > 0, hidden1.snapshots, { timeout: 5000 });
    const vis = await stats();
    assert.equal(vis.snapshots, hidden1.snapshots + 1, 'one snapshot on visible');
    assert.equal(vis.unexpectedGaps, 0, 'the snapshot covers the skipped batches');
    await page.waitForFunction((n) => (globalThis as any).rt.client.stats.batches > n + 5, vis.batches, { timeout: 5000 });
    const conn = [...srv.conns][0];
    assert.deepEqual(
      conn.received.filter((m) => m.t === 'visibility'),
      [
        { t: 'visibility', hidden: true },
        { t: 'visibility', hidden: false },
      ],
    );
  });

  it('a page loaded hidden connects with hidden=1 and gets nothing until visible', async () => {
    stopFeed = srv.feed('scale/weight', 80);
    await page.addInitScript(() => (globalThis as any).__rtSetHidden(true));
    await page.goto(`${base}/trace.html`);
    await page.waitForFunction(() => (globalThis as any).rt?.client.stats.connects === 1, undefined, { timeout: 15_000 });
    assert.equal(srv.history[0].hidden, true);
    await sleep(500);
    assert.equal((await stats()).batches, 0);
    await page.evaluate(() => (globalThis as any).__rtSetHidden(false));
    await page.waitForFunction(() => (globalThis as any).rt.client.stats.snapshots === 1 && (globalThis as any).rt.client.stats.batches > 3, undefined, { timeout: 5000 });
  });

  it('comes back by itself after the server drops it, resuming without a gap', async () => {
    stopFeed = srv.feed('scale/weight', 80);
    await page.goto(`${base}/trace.html`);
    await page.waitForFunction(() => (globalThis as any).rt?.client.stats.batches > 10, undefined, { timeout: 15_000 });
    srv.dropAll();
    await page.waitForFunction(() => (globalThis as any).rt.client.stats.reconnects === 1 && (globalThis as any).rt.client.stats.batches > 40, undefined, { timeout: 15_000 });
    const s = await stats();
    assert.equal(s.gaps, 0);
    assert.equal(s.unexpectedGaps, 0);
    assert.equal(s.snapshots, 1, 'the first connect only: the reconnect resumed');
    assert.ok(srv.history[1].resume !== null);
  });
});
