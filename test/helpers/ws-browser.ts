// Chromium helpers for the rt-ws-batcher browser client tests: a browser whose
// animation frames and timers are not throttled (so rAF intervals measure the
// page, not a background policy), a page-visibility override, rAF interval
// sampling in the page, and the JS heap after a forced GC (CDP).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

import type { Browser, CDPSession, Page } from 'playwright-core';

import { CHROMIUM } from './dashboard';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromium } = require('playwright-core') as typeof import('playwright-core');

/**
 * Debian's Chromium, headless, with background throttling off. No
 * --disable-frame-rate-limit: rAF stays at the display rate (60 Hz), so an
 * interval p95 <= 17 ms means no frame was missed, not a faster clock.
 */
export async function launchUnthrottled(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
      '--enable-precise-memory-info',
    ],
  });
}

/**
 * An init script: document.hidden / visibilityState follow window.__rtSetHidden(bool),
 * which also fires visibilitychange (headless Chromium never hides a page by itself).
 */
export const VISIBILITY_OVERRIDE = `(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get() { return hidden; } });
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get() { return hidden ? 'hidden' : 'visible'; } });
  window.__rtSetHidden = (h) => { hidden = !!h; document.dispatchEvent(new Event('visibilitychange')); };
})();`;

export interface RafStats {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  over17: number;
}

/** Samples requestAnimationFrame intervals in the page for `ms`. */
export async function measureRaf(page: Page, ms: number): Promise<RafStats> {
  return page.evaluate(
    (dur) =>
      new Promise<RafStats>((resolve) => {
        const iv: number[] = [];
        let last = -1;
        const raf = (globalThis as unknown as { requestAnimationFrame(cb: (t: number) => void): number }).requestAnimationFrame;
        const end = performance.now() + dur;
        const tick = (t: number): void => {
          if (last >= 0) iv.push(t - last);
          last = t;
          if (t < end) raf(tick);
          else {
            const s = [...iv].sort((a, b) => a - b);
            const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))];
            resolve({ n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), max: s[s.length - 1], over17: s.filter((x) => x > 17).length });
          }
        };
        raf(tick);
      }),
    ms,
  );
}

/** JS heap in use after a full GC (CDP HeapProfiler.collectGarbage + Runtime.getHeapUsage), bytes. */
export async function heapAfterGc(cdp: CDPSession): Promise<number> {
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.collectGarbage');
  const h = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number };
  return h.usedSize;
}
