// The rt-dosing edit dialog in the Node-RED editor (Debian's headless Chromium
// through playwright-core) shows what the deployed node learned of its plant
// (admin endpoint rt-dosing/:id/learned) after a dose of the shipped example,
// and its "Forget learned plant" button makes the node forget; the fine band's
// default is 0 (automatic) and "Learning" is the number of doses learned from.
// With adminAuth, reading needs rt-dosing.read and forgetting rt-dosing.write.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Browser, Page } from 'playwright-core';

import { openEditor } from '../helpers/dashboard';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, waitFor } from '../helpers/util';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcrypt = require('bcryptjs') as { hashSync(s: string, rounds: number): string };

const example = join(repoRoot, 'examples', 'rt-dosing', '01 - Dose a target on the simulated scale.json');

interface LearnedView {
  learned: { doses: number; delay_ms: number; tau_ms: number; jitter_ms: number; lag_ms: number; noise_g: number; outliers: number; fine_duty_pct: number; fine_settle_ms: number; fine_ripple_g: number; fine_ripple_hz: number; fine_ripple_from: string } | null;
  running: boolean;
}

describe('rt-dosing learned plant in the editor and behind admin permissions (real runtime, real browser)', function () {
  this.timeout(180_000);
  let rt: ChildRuntime | null = null;
  let browser: Browser | null = null;
  afterEach(async () => {
    await browser?.close().catch(() => undefined);
    browser = null;
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
      rt = null;
    }
  });

  it('the edit dialog shows the learned plant after a dose, and "Forget learned plant" clears it', async () => {
    rt = await startNodeRed();
    const r = rt;
    await r.deploy(JSON.parse(readFileSync(example, 'utf8')));
    const view = async (): Promise<LearnedView> => JSON.parse((await r.get('/rt-dosing/exd_dz/learned')).text) as LearnedView;
    await waitFor(async () => (await r.get('/rt-dosing/exd_dz/learned')).status === 200, 15_000, 'the dosing node deployed');
    assert.equal((await view()).learned, null, 'nothing learned on a fresh station');
    await waitFor(async () => (await r.post('/inject/exd_50', {})).status === 200 && (await view()).running, 15_000, 'the 50 g dose running');
    const v = await waitFor(async () => {
      const x = await view();
      return x.learned && x.learned.doses === 1 && !x.running ? x : null;
    }, 60_000, 'the dose learned from');

    const pageErrors: string[] = [];
    let page: Page;
    ({ browser, page } = await openEditor(r, 'exd_dz'));
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // a new node's defaults: fine band 0 (automatic), learn from the last 9 doses
    const defaults = await page.evaluate("(function () { var d = RED.nodes.getType('rt-dosing').defaults; return { band: d.fineBandG.value, learn: d.learnDoses.value, div: 'learnDiv' in d }; })()");
    assert.deepEqual(defaults, { band: 0, learn: 9, div: false });

    await page.evaluate("RED.editor.edit(RED.nodes.node('exd_dz'))");
    const table = page.locator('#rt-dosing-learned-table');
    await table.waitFor({ timeout: 20_000 });
    const text = (await table.innerText()).replace(/\s+/g, ' ');
    const l = v!.learned!;
    assert.match(text, /Doses learned from 1\b/, text);
    assert.ok(text.includes(`Dead time ${l.delay_ms} ms`), text);
    assert.ok(text.includes(`In-flight time ${l.tau_ms} ms fine`), text);
    assert.ok(text.includes(`jitter ${l.jitter_ms} ms`), text);
    // the motor's lag is fitted from the second coarse spin-up from rest on: after one dose, not yet
    assert.ok(text.includes(`Motor lag ${l.lag_ms ? `${l.lag_ms} ms` : 'not measured'}`), text);
    assert.ok(text.includes(`Switch to a steady fine ramp ${l.fine_settle_ms ? `${l.fine_settle_ms} ms` : 'not measured'}`), text);
    assert.ok(text.includes(`Noise (sigma) ${l.noise_g > 0 ? `${l.noise_g} g` : 'under 0.01 g'}`), text);
    assert.ok(text.includes(`Fine duty in use ${l.fine_duty_pct} %`), text);
    assert.match(text, /Flow per duty .*10%: [\d.]+ g\/s/, text);
    assert.match(text, /Outliers rejected \d+/, text);
    // the ripple at fine speed, worded from where its period comes from
    const fineRipple: Record<string, string> = { fine_ramp: 'seen on a fine ramp', across_doses: "seen across doses' fine ramps", coarse_ramp: "the coarse ripple's period", not_at_fine: 'the coarse ripple is absent at fine speed', none: 'none seen' };
    assert.ok(l.fine_ripple_from && l.fine_ripple_from in fineRipple, JSON.stringify(l));
    assert.ok(text.includes(`Ripple at fine speed ${l.fine_ripple_hz ? `${l.fine_ripple_g} g, ${l.fine_ripple_hz} Hz (` : ''}${fineRipple[l.fine_ripple_from]}`), text);
    // how the ripple lands in the coast: nothing decided after one dose
    assert.ok(text.includes("Ripple in the motor's coast not decided yet"), text);
    // the fields are worded from the catalog: the fine band is a minimum fine mass, 0 = automatic
    const labels = await page.evaluate("({ band: $('label[for=node-input-fineBandG]').text(), learn: $('label[for=node-input-learnDoses]').text(), tips: $('.form-tips').text() })");
    assert.match((labels as { band: string }).band, /Min fine mass \(g\)/);
    assert.match((labels as { learn: string }).learn, /Learn from the last N doses/);
    assert.match((labels as { tips: string }).tips, /0 = automatic/);

    await page.locator('#rt-dosing-forget').click();
    await page.waitForFunction("/Forgotten/.test(document.querySelector('#rt-dosing-learned-msg').textContent)", undefined, { timeout: 10_000 });
    await page.waitForFunction("/Nothing learned yet/.test((document.querySelector('#rt-dosing-learned-none') || {}).textContent || '')", undefined, { timeout: 10_000 });
    assert.equal((await view()).learned, null, 'the node forgot');
    await page.evaluate('RED.tray.close()');
    assert.deepEqual(pageErrors, []);
  });

  it('with adminAuth: reading needs rt-dosing.read, forgetting rt-dosing.write', async () => {
    const hash = bcrypt.hashSync('secret-pw', 8);
    const flows = JSON.parse(readFileSync(example, 'utf8')) as object[];
    rt = await startNodeRed({
      flows,
      settings: {
        adminAuth: {
          type: 'credentials',
          users: [
            { username: 'viewer', password: hash, permissions: ['rt-dosing.read'] },
            { username: 'operator', password: hash, permissions: ['rt-dosing.read', 'rt-dosing.write'] },
          ],
        },
      },
      startedBy: 'log',
    });
    const url = rt.url;
    const token = async (user: string, scope: string): Promise<string> => {
      const res = await fetch(`${url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username: user, password: 'secret-pw' }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      return ((await res.json()) as { access_token: string }).access_token;
    };
    const as = (t: string): RequestInit => ({ headers: { authorization: `Bearer ${t}` } });
    const viewer = await token('viewer', 'rt-dosing.read');
    const operator = await token('operator', 'rt-dosing.read rt-dosing.write');
    assert.equal((await fetch(`${url}/rt-dosing/exd_dz/learned`)).status, 401, 'no token: refused');
    const read = await waitFor(async () => {
      const res = await fetch(`${url}/rt-dosing/exd_dz/learned`, as(viewer));
      return res.status === 200 ? res : null;
    }, 15_000, 'the viewer reads the learned plant');
    assert.equal(((await read!.json()) as LearnedView).learned, null);
    assert.equal((await fetch(`${url}/rt-dosing/exd_dz/forget`, { method: 'POST', ...as(viewer) })).status, 401, 'the viewer may not forget');
    // until the scale's worker runs, forget answers 409 "not running yet" (try again); then the operator may
    const ok = await waitFor(async () => {
      const res = await fetch(`${url}/rt-dosing/exd_dz/forget`, { method: 'POST', ...as(operator) });
      const text = await res.text();
      if (res.status === 409 && /not running yet/.test(text)) return null;
      return { status: res.status, text };
    }, 15_000, 'the operator forgets once the scale runs', 100);
    assert.equal(ok!.status, 200, ok!.text);
  });
});
