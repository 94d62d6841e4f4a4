// A shipped dashboard flow in a Node-RED process, opened in Debian's headless
// Chromium through playwright-core (never a downloaded browser).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser, Page } from 'playwright-core';

import { type ChildRuntime, startNodeRed } from './nodered-child';
import { repoRoot, waitFor } from './util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { chromium } = require('playwright-core') as typeof import('playwright-core');

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export interface DashboardSession {
  rt: ChildRuntime;
  browser: Browser;
  page: Page;
  /** An Error carrying `e`'s message, the page's text and the runtime's log tail. */
  failure(e: Error): Promise<Error>;
  close(): Promise<void>;
}

/** Debian's Chromium, headless, through playwright-core. CI installs it (.ci/run): a missing browser fails, it is not a skip. */
export async function launchChromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** The Node-RED editor of `rt` in a fresh browser, once it has loaded the flows (node `nodeId` is known). */
export async function openEditor(rt: ChildRuntime, nodeId: string): Promise<{ browser: Browser; page: Page }> {
  const browser = await launchChromium();
  const page = await browser.newPage();
  await page.goto(`${rt.url}/`, { waitUntil: 'domcontentloaded' });
  await page.waitForFunction(`!!(window.RED && RED.nodes && RED.nodes.node(${JSON.stringify(nodeId)}))`, undefined, { timeout: 60_000 });
  return { browser, page };
}

/**
 * Deploys examples/<exampleFile> in a fresh Node-RED process (zero [error] lines
 * asserted) and opens /dashboard<pagePath>. CI installs chromium (.ci/run): a
 * missing browser fails, it is not a skip.
 */
export async function openDashboard(exampleFile: string, pagePath: string, opts: { beforeGoto?(page: Page): void } = {}): Promise<DashboardSession> {
  const rt = await startNodeRed();
  let browser: Browser | null = null;
  const close = async (): Promise<void> => {
    await browser?.close().catch(() => undefined);
    await rt.kill('SIGKILL');
    rt.cleanup();
  };
  try {
    await rt.deploy(JSON.parse(readFileSync(join(repoRoot, 'examples', exampleFile), 'utf8')) as object[]);
    await waitFor(() => /Started flows/.test(rt.log()), 20_000, 'flows started');
    assert.doesNotMatch(rt.log(), /\[error\]/, rt.log());
    browser = await launchChromium();
    const page = await browser.newPage();
    opts.beforeGoto?.(page);
    await page.goto(`${rt.url}/dashboard${pagePath}`, { waitUntil: 'domcontentloaded' });
    const b = browser;
    return {
      rt,
      browser: b,
      page,
      failure: async (e) => new Error(`${e.message}\npage text: ${(await page.locator('body').innerText()).replace(/\s+/g, ' ').slice(0, 1500)}\nlog: ${rt.log().slice(-1500)}`),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * On the dosing station dashboard page: types a target, presses Start, and
 * waits for the result row; returns the row's text (target, state, final g).
 */
export async function doseFromDashboard(page: Page, grams: number, failure: (e: Error) => Promise<Error>): Promise<string> {
  const input = page.getByLabel('Target (g)');
  await input.waitFor({ timeout: 15_000 });
  await input.fill(String(grams));
  await input.press('Enter');
  await page.waitForTimeout(500);
  await page.getByRole('button', { name: /Start dose/ }).click();
  // progress shows up, then the result row
  await page.getByText(/coarse|fine|taring|settling/).first().waitFor({ timeout: 15_000 });
  const row = page.locator('tr').filter({ hasText: /ok|under|over|aborted/ }).first();
  await row.waitFor({ timeout: 60_000 }).catch(async (e: Error) => {
    throw await failure(e);
  });
  return (await row.innerText()).replace(/\s+/g, ' ');
}

