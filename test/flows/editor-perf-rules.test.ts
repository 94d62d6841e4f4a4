// The rt-perf-monitor edit dialog checks the alert rules as the runtime does,
// in words from the node's catalog: run in the real Node-RED editor (Debian's
// headless Chromium through playwright-core), on the shipped example.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser, Page } from 'playwright-core';

import { openEditor } from '../helpers/dashboard';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot } from '../helpers/util';

const example = join(repoRoot, 'examples', 'rt-perf-monitor', '01 - Watch node latency, event-loop lag and memory.json');

describe('rt-perf-monitor rules in the Node-RED editor (real browser)', function () {
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

  it('names the first problem of invalid rules, worded from the catalog', async () => {
    rt = await startNodeRed();
    await rt.deploy(JSON.parse(readFileSync(example, 'utf8')));
    let page: Page;
    ({ browser, page } = await openEditor(rt, 'pm_monitor'));
    const check = (rules: string): Promise<unknown> =>
      page.evaluate(`(function () { var n = RED.nodes.node('pm_monitor'); return n._def.defaults.rules.validate.call(n, ${JSON.stringify(rules)}, {}); })()`);
    assert.equal(await check('[{"metric":"memory.rss","threshold":500}]'), true);
    assert.equal(await check('{"metric":"memory.rss"}'), 'rules must be a JSON array of {metric, threshold, ...} objects');
    assert.equal(await check('[{"metric":"memory.rss","threshold":1},{"metric":"memory.rss","threshold":-1}]'), 'rule 2: threshold must be a number > 0');
    assert.equal(await check('[{"metric":"memory.rss","threshold":1,"percentile":99}]'), 'rule 1: percentile does not apply to the gauge memory.rss');
    assert.equal(await check('[{"metric":"node.latency","threshold":1}]'), 'rule 1: node.latency needs "node": a node id, name or type');
    assert.match(String(await check('[{"metric":"cpu","threshold":1}]')), /^rule 1: unknown metric "cpu" \(use eventloop\.delay, node\.latency, .* or an rtedge_\.\.\._seconds histogram\)$/);
    assert.match(String(await check('[{')), /^rules are not valid JSON \(/);
  });
});
