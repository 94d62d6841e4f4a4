// The editor fixes of the review, checked in the real Node-RED editor (Debian's
// headless Chromium through playwright-core) with every shipped example
// loaded: the perf monitor dialog shows the problem of an invalid rule with no
// exception in the page; the rs485 watch's default label; validation of out
// of range values (the same limits the runtime applies, which refuses a gate
// port of 70000 at deploy); translated output labels; each node's help from
// locales/en-US/<type>.html, shown in the info sidebar.
import assert from 'node:assert/strict';

import type { Browser, Page } from 'playwright-core';

import { allExampleFlows } from '../helpers/all-examples';
import { openEditor } from '../helpers/dashboard';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { freePort, waitFor } from '../helpers/util';

const TYPES = ['rt-scale', 'rt-hx711', 'rt-dosing', 'rt-rs485-port', 'rt-rs485-watch', 'rt-gate-endpoint', 'rt-gate-command', 'rt-journey-egress', 'rt-perf-monitor'];

describe('editor review fixes in the Node-RED editor (real browser)', function () {
  this.timeout(180_000);
  let rt: ChildRuntime | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const pageErrors: string[] = [];
  before(async () => {
    rt = await startNodeRed();
    // the serial path does not exist: the editor does not care, the watch shows "port unavailable"
    await rt.deploy(await allExampleFlows({ gatePort: await freePort(), serialPath: '/dev/rtedge-no-such-tty' }));
    ({ browser, page } = await openEditor(rt, 'pm_monitor'));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(m.text());
    });
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
  });
  const js = <T>(src: string): Promise<T> => page.evaluate(src) as Promise<T>;

  it('perf monitor dialog: an invalid rule shows its problem text, no exception in the page', async () => {
    await js("RED.editor.edit(RED.nodes.node('pm_monitor'))");
    await page.locator('#node-input-rules').waitFor({ state: 'attached', timeout: 20_000 });
    await js(`(function () {
      $('#node-input-rules').typedInput('value', '[{"metric":"memory.rss","threshold":-1}]');
      $('#node-input-rules').trigger('change');
    })()`);
    await page.waitForFunction("document.querySelector('#rt-perf-rules-problem').textContent.length > 0", undefined, { timeout: 10_000 });
    assert.equal((await page.locator('#rt-perf-rules-problem').innerText()).trim(), 'rule 1: threshold must be a number > 0');
    await js("$('#node-input-rules').typedInput('value', '[]'); $('#node-input-rules').trigger('change')");
    assert.equal((await page.locator('#rt-perf-rules-problem').innerText()).trim(), '');
    await js('RED.tray.close()');
    assert.deepEqual(pageErrors, []);
  });

  it("rs485 watch: the default label is 'rs485 <key>', not 'door door'", async () => {
    const label = await js<string>("(function () { var n = RED.nodes.node('rsx_watch'); return n._def.label.call({ name: '', key: n.key || 'door' }); })()");
    assert.equal(label, 'rs485 door');
  });

  it('validation: gate port 70000, Modbus unit 0 and a negative queue are flagged, with the range', async () => {
    const check = (id: string, field: string, value: unknown): Promise<{ valid: boolean; message: unknown }> =>
      js(`(function () {
        var n = RED.nodes.node(${JSON.stringify(id)});
        var old = n[${JSON.stringify(field)}];
        n[${JSON.stringify(field)}] = ${JSON.stringify(value)};
        RED.editor.validateNode(n);
        var out = { valid: n.valid, message: n._def.defaults[${JSON.stringify(field)}].validate.call(n, ${JSON.stringify(value)}, {}) };
        n[${JSON.stringify(field)}] = old;
        RED.editor.validateNode(n);
        return out;
      })()`);
    assert.deepEqual(await check('gx_ep', 'port', '70000'), { valid: false, message: 'port must be a whole number in [1, 65535]' });
    assert.deepEqual(await check('rsx_watch', 'unit', '0'), { valid: false, message: 'unit must be a whole number in [1, 247]' });
    assert.deepEqual(await check('gx_cmd', 'queueLimit', '-1'), { valid: false, message: 'queueLimit must be a whole number in [1, 100000]' });
    assert.deepEqual(await check('eg_egress', 'flushMs', '-5'), { valid: false, message: 'flushMs must be a number in [10, 3600000]' });
    assert.equal((await check('gx_ep', 'port', '4001')).valid, true);
    assert.equal((await check('rsx_watch', 'unit', '247')).valid, true);
    assert.deepEqual(pageErrors, []);
  });

  it('output labels are worded from the catalogs', async () => {
    const labels = await js<Record<string, string[]>>(`(function () {
      var out = {};
      ['exd_hx', 'exd_dz', 'rsx_watch', 'gx_cmd', 'eg_egress', 'pm_monitor'].forEach(function (id) {
        var n = RED.nodes.node(id);
        var l = [];
        for (var i = 0; i < n.outputs; i++) l.push(n._def.outputLabels.call(n, i));
        out[n.type] = l;
      });
      return out;
    })()`);
    assert.deepEqual(labels, {
      'rt-hx711': ['weight'],
      'rt-dosing': ['dose result', 'progress'],
      'rt-rs485-watch': ['door state changes'],
      'rt-gate-command': ['command results'],
      'rt-journey-egress': [labels['rt-journey-egress'][0]],
      'rt-perf-monitor': ['snapshot', 'alerts', 'health report'],
    });
    assert.match(labels['rt-journey-egress'][0], /^(flush reports|nothing \(flush reports off\))$/);
  });

  it('each node type has its help from locales/en-US, shown in the info sidebar', async () => {
    for (const type of TYPES) {
      const text = await js<string>(`(function () { var s = $('script[data-help-name="${type}"]'); return s.length ? s.html() : ''; })()`);
      assert.match(text, /<p>/, `${type}: help loaded in the editor`);
    }
    // the info sidebar renders it for a selected node
    await js("RED.sidebar.show('info'); RED.view.select('gx_cmd')");
    await page.waitForFunction("/In flight/.test(($('.red-ui-help') .text() || '') + ($('.red-ui-sidebar-info').text() || ''))", undefined, { timeout: 15_000 });
    const info = await js<string>("$('.red-ui-sidebar-info').text()");
    assert.match(info, /Up to the endpoint's In flight commands \(default 8\)/);
    assert.doesNotMatch(info, /one at a time: the next is sent/);
    assert.deepEqual(pageErrors, []);
  });

  it("rt-scale dialog: 'Check the scale for 10 s' reads the deployed scale for a fresh window and shows its figures", async () => {
    await js("RED.editor.editConfig('', 'rt-scale', 'scale1')");
    await page.locator('#rt-scale-check').waitFor({ state: 'visible', timeout: 20_000 });
    const t0 = Date.now();
    await page.locator('#rt-scale-check').click();
    await page.waitForFunction("/reading for 10 s/.test($('#rt-scale-check-out').text())", undefined, { timeout: 5_000 });
    await page.waitForFunction("/samples/.test($('#rt-scale-check-out').text())", undefined, { timeout: 40_000 });
    const out = await page.locator('#rt-scale-check-out').innerText();
    assert.ok(Date.now() - t0 >= 10_000, 'the answer came after the 10 s window');
    // e.g. "simulated, 10 s: 800 samples (80/s); bad 0; latency p50/p99/max 0.20/0.80/1.10 ms; clock-high max 12 us"
    const m = /^simulated, (\d+(?:\.\d)?) s: (\d+) samples \((\d+(?:\.\d)?)\/s\); bad .+; latency p50\/p99\/max [\d.]+\/[\d.]+\/[\d.]+ ms; clock-high max \d+ us$/.exec(out);
    assert.ok(m, out);
    assert.ok(Number(m[1]) >= 10 && Number(m[1]) < 12, out);
    assert.ok(Number(m[3]) > 40 && Number(m[3]) < 120, `an 80 SPS scale: ${out}`);
    await js('RED.tray.close()');
    assert.deepEqual(pageErrors, []);
  });

  it('the runtime refuses the same out-of-range value at deploy (gate port 70000)', async () => {
    const r = rt!;
    const flows = await allExampleFlows({ gatePort: 70000, serialPath: '/dev/rtedge-no-such-tty' });
    await r.deploy(flows);
    await waitFor(() => /port must be a whole number in \[1, 65535\]/.test(r.log()), 10_000, 'the gate command reports the bad port');
  });
});
