// The shipped rt-hx711 example in a Node-RED process: live weight from the
// simulated scale, tare and calibrate from its inject nodes (clicked through
// the admin API like the editor's buttons), calibration persisted in the user
// dir, and the sampler's latency histogram on /metrics.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { repoRoot, sleep, waitFor } from '../helpers/util';

const example = join(repoRoot, 'examples', 'rt-hx711', '01 - Live weight from a simulated HX711.json');

function metric(text: string, name: string, labels = 'scale="scale1"'): number {
  const m = text.match(new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm'));
  assert.ok(m, `${name}{${labels}} missing`);
  return Number(m[1]);
}

describe('rt-hx711 example in a Node-RED process', function () {
  this.timeout(90_000);
  let rt: ChildRuntime | null = null;
  after(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
    }
  });

  it('shows a live weight; tare and calibrate work from the inject nodes and persist', async () => {
    rt = await startNodeRed();
    await rt.deploy(JSON.parse(readFileSync(example, 'utf8')));
    const r = rt;
    const weight = async (): Promise<number> => metric((await r.get('/metrics')).text, 'rtedge_hx711_weight_grams');
    const click = async (id: string): Promise<void> => {
      const res = await r.post(`/inject/${id}`, {});
      assert.equal(res.status, 200, res.text);
    };
    await waitFor(async () => (await r.get('/metrics')).text.includes('rtedge_hx711_samples_total{scale="scale1"}'), 10_000, 'the scale sampling');
    await sleep(500);
    assert.ok(Math.abs(await weight()) < 0.5, 'empty cell about 0 g');
    await click('inj1'); // container 40 g
    await waitFor(async () => Math.abs((await weight()) - 40) < 0.2, 5000, 'the container weighs 40 g');
    await click('inj2'); // tare
    await waitFor(async () => Math.abs(await weight()) < 0.1, 5000, 'tared to 0 g');
    await click('inj3'); // place 100 g
    await waitFor(async () => Math.abs((await weight()) - 100) < 0.3, 5000, '100 g on the tared container');
    const dir = join(r.userDir, 'rtedge-calibration');
    type Stored = { zero: number; cpgMilli: number; how: string };
    const readStored = (): Stored | null => {
      if (!existsSync(dir)) return null;
      const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
      assert.ok(files.length <= 1, `one file per scale: ${files}`);
      return files.length ? (JSON.parse(readFileSync(join(dir, files[0]), 'utf8')) as Stored) : null;
    };
    assert.equal(readStored()?.how, 'tare', 'the tare is stored');
    await click('inj4'); // calibrate 100 g
    await waitFor(() => readStored()?.how === 'calibrate', 5000, 'calibration stored');
    const stored = readStored()!;
    assert.ok(Math.abs(stored.zero - (84_000 + 40 * 420)) < 10, `zero ${stored.zero}`);
    assert.ok(Math.abs(stored.cpgMilli - 420_000) < 1_000, `counts/g x1000 ${stored.cpgMilli}`);
    // the editor's view of the calibration
    const ed = await r.get('/rt-scale/scale1/calibration');
    assert.equal(ed.status, 200);
    const view = JSON.parse(ed.text) as { source: string; active: { zero: number } };
    assert.equal(view.source, 'stored');
    assert.equal(view.active.zero, stored.zero);
    // sampler latency on /metrics: data-ready to ring, histogram and percentiles
    await sleep(1500);
    const text = (await r.get('/metrics')).text;
    // the noise readout: the simulated cell's noise is 6 counts at 420 counts/g, about 0.014 g
    const noise = metric(text, 'rtedge_hx711_noise_grams');
    assert.ok(noise > 0.005 && noise < 0.03, `noise ${noise} g`);
    assert.match(text, /# TYPE rtedge_hx711_sample_latency_seconds histogram/);
    const n = metric(text, 'rtedge_hx711_sample_latency_seconds_count');
    assert.ok(n > 100, `latency count ${n}`);
    const p95 = metric(text, 'rtedge_hx711_sample_latency_p95_seconds');
    assert.ok(p95 > 0 && p95 < 0.1, `p95 ${p95}`);
    assert.equal(metric(text, 'rtedge_hx711_samples_lost_total'), 0);
    // conversions overwritten before a late read (the chip converts on its own crystal): generous bound, shared noisy cores
    const missed = metric(text, 'rtedge_hx711_conversions_missed_total');
    assert.ok(missed >= 0 && missed <= n / 50, `conversions missed ${missed} of ${n}`);
    assert.equal(metric(text, 'rtedge_hx711_bad_reads_total', 'scale="scale1",reason="overrun"'), 0);
  });
});
