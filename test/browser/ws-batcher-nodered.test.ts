// The rt-ws-batcher browser client in Debian's Chromium against the real node
// in a real Node-RED process: examples/rt-ws-batcher/02 (the simulated scale's
// samples straight to the batcher, a plain page at /weight-trace that imports
// the node's client.js and rt-ws-canvas.js). Reload -> resume with the last
// seq; a hidden page gets nothing, then a snapshot; a redeploy (every socket
// closed) -> the page reconnects by itself and keeps drawing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser, Page } from 'playwright-core';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, sleep, waitFor } from '../helpers/util';
import { launchUnthrottled, VISIBILITY_OVERRIDE } from '../helpers/ws-browser';

/* eslint-disable @typescript-eslint/no-explicit-any */
const EXAMPLE = 'examples/rt-ws-batcher/02 - Live weight to a browser page.json';

describe('rt-ws-batcher browser client in Chromium (real Node-RED, example 02)', function () {
  this.timeout(120_000);
  let rt: ChildRuntime | null = null;
  let browser: Browser | null = null;
  let page: Page;
  let flows: object[];
  /** every WebSocket URL the page opened */
  let sockets: string[] = [];

  const stats = (): Promise<any> =>
    page.evaluate(() => {
      const r = (globalThis as any).rt;
      return r ? { ...r.client.stats, draws: r.renderer.stats.draws, visible: r.renderer.stats.visiblePoints } : null;
    });
  const resumeOf = (u: string): number | null => {
    const v = new URL(u).searchParams.get('resume');
    return v === null ? null : Number(v);
  };

  before(async () => {
    flows = JSON.parse(readFileSync(join(repoRoot, EXAMPLE), 'utf8')) as object[];
    rt = await startNodeRed();
    await rt.deploy(flows);
    await waitFor(() => /Started flows/.test(rt!.log()), 20_000, 'flows started');
    assert.doesNotMatch(rt.log(), /\[error\]/, rt.log());
    browser = await launchUnthrottled();
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    await rt?.kill('SIGKILL');
    rt?.cleanup();
  });
  beforeEach(async () => {
    sockets = [];
    page = await browser!.newPage();
    await page.addInitScript(VISIBILITY_OVERRIDE);
    page.on('websocket', (ws) => sockets.push(ws.url()));
    page.on('pageerror', (e) => console.error('page error:', e.message));
  });
  afterEach(async () => {
    await page?.close();
  });

  const open = async (): Promise<void> => {
    await page.goto(`${rt!.url}/weight-trace`);
    await page.waitForFunction(() => (globalThis as any).rt?.client.stats.batches > 20, undefined, { timeout: 20_000 }).catch(async (e: Error) => {
      throw new Error(`${e.message}\nstats: ${JSON.stringify(await stats())}\nlog: ${rt!.log().slice(-1500)}`);
    });
  };

  it('draws the live weight from the scale and reloads into a resume from the last seq', async () => {
    await open();
    const s0 = await stats();
    assert.ok(s0.visible > 0 && s0.draws > 0, `drawn: ${JSON.stringify(s0)}`);
    assert.equal(new URL(sockets[0]).searchParams.get('format'), 'bin');
    assert.equal(resumeOf(sockets[0]), null);
    await page.reload();
    await page.waitForFunction(() => (globalThis as any).rt?.client.stats.batches > 10, undefined, { timeout: 20_000 });
    const resume = resumeOf(sockets[1]);
    assert.ok(resume !== null && resume >= s0.lastSeq, `the reloaded page connected with resume=${resume} (was at ${s0.lastSeq})`);
    const s1 = await stats();
    assert.equal(s1.snapshots, 0, `inside the ring: replay, no snapshot (${JSON.stringify(s1)})`);
    assert.equal(s1.gaps, 0);
    assert.equal(s1.unexpectedGaps, 0);
    assert.equal(s1.lastSeq - s1.batches + 1, resume! + 1, 'the first batch after the reload is the one after the stored seq');
  });

  it('a hidden page gets nothing, then a snapshot when visible again', async () => {
    await open();
    await page.evaluate(() => (globalThis as any).__rtSetHidden(true));
    await sleep(300); // the report reaches the server; frames already on the wire arrive
    const h0 = await stats();
    await sleep(1500);
    const h1 = await stats();
    assert.equal(h1.frames, h0.frames, `no frame while hidden (${h1.frames - h0.frames} arrived)`);
    await page.evaluate(() => (globalThis as any).__rtSetHidden(false));
    await page.waitForFunction((n) => (globalThis as any).rt.client.stats.snapshots > n, h1.snapshots, { timeout: 5000 });
    await page.waitForFunction((n) => (globalThis as any).rt.client.stats.batches > n + 5, h1.batches, { timeout: 5000 });
    const v = await stats();
    assert.equal(v.snapshots, h1.snapshots + 1, 'one snapshot');
    assert.equal(v.unexpectedGaps, 0, 'the snapshot covers what the hidden page skipped');
  });

  it('a redeploy closes the socket; the page reconnects by itself and keeps drawing', async () => {
    await open();
    const s0 = await stats();
    await rt!.deploy(flows.map((n: any) => (n.type === 'rt-ws-batcher' ? { ...n, name: `${n.name} ` } : n)));
    await page.waitForFunction((n) => (globalThis as any).rt.client.stats.reconnects >= 1 && (globalThis as any).rt.client.stats.batches > n + 40, s0.batches, { timeout: 30_000 });
    const s1 = await stats();
    assert.ok(sockets.length >= 2, `a second socket: ${sockets.join(' ')}`);
    assert.equal(s1.unexpectedGaps, 0);
    assert.ok(s1.visible > 0);
  });
});
