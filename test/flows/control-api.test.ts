// flows/control-api.json in a real Node-RED process with httpNodeAuth: each
// endpoint's contract (valid, invalid, oversize, idempotent log toggles, the
// GPIO round trip, 401 without credentials), then a 20 s run of the plan's
// four workloads at rate-x 1 as a smoke check with generous bounds (10x the
// SLOs; the strict check is npm run bench -- control-api).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { type ControlRuntime, runLoad, SLOS, GROUPS, startControlRuntime, API_USER, API_PASS } from '../../bench/lib/control-load';
import { repoRoot, sleep, waitFor } from '../helpers/util';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('control API flow (flows/control-api.json, httpNodeAuth)', function () {
  this.timeout(120_000);
  let c: ControlRuntime;
  let base: string;
  const auth = 'Basic ' + Buffer.from(`${API_USER}:${API_PASS}`).toString('base64');

  async function call(
    method: string,
    path: string,
    body?: unknown,
    o: { auth?: string | null; raw?: string | Uint8Array; type?: string; base?: string } = {},
  ): Promise<{ status: number; json: Json; text: string; type: string }> {
    const headers: Record<string, string> = {};
    const a = o.auth === undefined ? auth : o.auth;
    if (a) headers.authorization = a;
    let data: string | Uint8Array | undefined;
    if (o.raw !== undefined) data = o.raw;
    else if (body !== undefined) data = JSON.stringify(body);
    if (data !== undefined) headers['content-type'] = o.type ?? 'application/json';
    const r = await fetch((o.base ?? base) + path, { method, headers, body: data });
    const text = await r.text();
    let json: Json = {};
    try {
      json = JSON.parse(text) as Json;
    } catch {
      /* not JSON */
    }
    return { status: r.status, json, text, type: r.headers.get('content-type') ?? '' };
  }

  /** Bodies that are not a JSON object at all: each a JSON 400/413/415 (the README's settings), nothing applied. */
  async function badBodies(b: string): Promise<void> {
    const writesBefore = (await call('GET', '/api/status', undefined, { base: b })).json.writes;
    for (const p of ['/api/control', '/api/gpio']) {
      for (const raw of ['not json', '{"rpm": 100', '{"rpm":100}}', "{'rpm':100}"]) {
        const r = await call('POST', p, undefined, { raw, base: b });
        assert.equal(r.status, 400, `${p} ${raw}: ${r.status} ${r.text}`);
        assert.match(r.type, /^application\/json/, r.text);
        assert.equal(r.json.error, 'bad-json', r.text);
        assert.equal(r.json.field, 'body', r.text);
        assert.equal(typeof r.json.detail, 'string', r.text);
      }
      // over the 1024-byte limit, by Content-Length and (chunked, no length) while reading; 10 MB is over
      // Node-RED's own 5 MB apiMaxLength too
      for (const raw of [JSON.stringify({ rpm: 100, pad: 'x'.repeat(2000) }), Buffer.alloc(10 * 1024 * 1024, 0x20)]) {
        const r = await call('POST', p, undefined, { raw, base: b });
        assert.equal(r.status, 413, `${p}: ${r.status} ${r.text.slice(0, 200)}`);
        assert.deepEqual(r.json, { error: 'too-large', field: 'body', limit: 1024 });
      }
      const chunked = await fetch(b + p, {
        method: 'POST',
        headers: { authorization: auth, 'content-type': 'application/json' },
        body: new Blob(['{"rpm":100,"pad":"', 'y'.repeat(3000), '"}']).stream(),
        duplex: 'half',
      } as RequestInit);
      assert.equal(chunked.status, 413, await chunked.clone().text());
      assert.equal(((await chunked.json()) as Json).error, 'too-large');
      // wrong content types: JSON text sent as text/plain or a form is refused by type, not guessed at
      for (const [type, raw] of [
        ['text/plain', '{"rpm":100}'],
        ['application/x-www-form-urlencoded', 'rpm=100'],
        ['application/xml', '<rpm>100</rpm>'],
      ]) {
        const r = await call('POST', p, undefined, { raw, type, base: b });
        assert.equal(r.status, 415, `${p} ${type}: ${r.status} ${r.text}`);
        assert.deepEqual(r.json, { error: 'unsupported-media-type', field: 'content-type', allowed: 'application/json', got: type });
      }
    }
    // +json types and charset parameters are JSON
    const ok = await call('POST', '/api/gpio', undefined, { raw: '{"pin":"led_user","value":false}', type: 'application/merge-patch+json; charset=utf-8', base: b });
    assert.equal(ok.status, 200, ok.text);
    const st = (await call('GET', '/api/status', undefined, { base: b })).json;
    assert.equal(st.writes, writesBefore, 'no control write reached the plant');
    assert.notEqual((await call('GET', '/api/data', undefined, { base: b })).json.motor.rpm_set, 100);
  }

  before(async () => {
    // The editor on '/', Node-RED's default and what `npm start` deploys, with the README's settings for
    // bodies (apiJsonBody as httpNodeMiddleware and, the editor being on '/', httpAdminMiddleware).
    c = await startControlRuntime({ adminRoot: '/' });
    base = `http://127.0.0.1:${c.target.port}`;
  });
  after(async () => {
    if (!c) return;
    await c.rt.kill('SIGTERM');
    c.rt.cleanup();
  });

  it('ships the same flow as the example', () => {
    const a = readFileSync(join(repoRoot, 'flows', 'control-api.json'), 'utf8');
    const b = readFileSync(join(repoRoot, 'examples', 'rt-control-plant', '01 - HTTP control API with dashboard.json'), 'utf8');
    assert.equal(a, b);
  });

  it('answers 401 without credentials or with a wrong password, on reads and writes', async () => {
    for (const [m, p] of [['GET', '/api/status'], ['GET', '/api/data'], ['POST', '/api/control'], ['POST', '/api/log/start'], ['GET', '/api/gpio'], ['POST', '/api/gpio']]) {
      const r = await call(m, p, m === 'POST' ? { rpm: 100 } : undefined, { auth: null });
      assert.equal(r.status, 401, `${m} ${p}`);
    }
    const wrong = await call('GET', '/api/data', undefined, { auth: 'Basic ' + Buffer.from(`${API_USER}:nope`).toString('base64') });
    assert.equal(wrong.status, 401);
    // nothing was applied by the refused write
    const d = await call('GET', '/api/data');
    assert.equal(d.json.motor.rpm_set, 0);
  });

  it('GET /api/status: state, safety flags, uptime, logging state', async () => {
    const r = await call('GET', '/api/status');
    assert.equal(r.status, 200);
    assert.match(r.text, /^\{/);
    assert.equal(r.json.state, 'running');
    assert.ok(r.json.uptime_s >= 0);
    assert.deepEqual(r.json.safety.over_temp, [false, false]);
    assert.equal(r.json.safety.overspeed, false);
    assert.equal(r.json.logging.on, false);
    assert.ok(r.json.ticks > 0);
  });

  it('GET /api/data: the latest temperatures, duties and RPM with a fresh timestamp', async () => {
    const r = await call('GET', '/api/data');
    assert.equal(r.status, 200);
    assert.equal(r.json.heaters.length, 2);
    for (const h of r.json.heaters) {
      assert.equal(typeof h.temp_c, 'number');
      assert.equal(h.target_c, 220);
      assert.equal(h.duty_set_pct, 40);
    }
    assert.equal(typeof r.json.motor.rpm, 'number');
    assert.ok(Math.abs(Date.now() - r.json.ts) < 2000, `ts ${r.json.ts}`);
    assert.ok(r.json.age_ms < 1000);
  });

  it('POST /api/control: a valid write is applied by the plant (set points, then the motor ramps)', async () => {
    const r = await call('POST', '/api/control', { target1: 230, duty2: 50, rpm: 1200 });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.applied, { target1: 230, duty2: 50, rpm: 1200 });
    assert.deepEqual(r.json.setpoints.targets_c, [230, 220]);
    assert.deepEqual(r.json.setpoints.duties_pct, [40, 50]);
    const d = await call('GET', '/api/data');
    assert.equal(d.json.heaters[0].target_c, 230);
    assert.equal(d.json.heaters[1].duty_set_pct, 50);
    assert.equal(d.json.motor.rpm_set, 1200);
    await waitFor(async () => (await call('GET', '/api/data')).json.motor.rpm > 300, 5000, 'the motor ramps up');
    // the heaters are below target: on at their duty
    assert.ok(d.json.heaters[1].duty_pct === 50, JSON.stringify(d.json.heaters));
  });

  it('POST /api/control: a refused write is a 400 naming the field and its range, and nothing is applied', async () => {
    const before = (await call('GET', '/api/data')).json;
    const writesBefore = (await call('GET', '/api/status')).json.writes;
    const cases: Array<[unknown, string, string | undefined]> = [
      [{ duty1: 70 }, 'out-of-range', 'duty1'],
      [{ target2: 200 }, 'out-of-range', 'target2'],
      [{ rpm: 1801 }, 'out-of-range', 'rpm'],
      [{ rpm: -1 }, 'out-of-range', 'rpm'],
      [{ target1: '230' }, 'not-number', 'target1'],
      [{ speed: 100 }, 'unknown-field', 'speed'],
      [{}, 'empty', undefined],
      [[1, 2], 'not-object', undefined],
      // one bad field refuses the whole write: target1 is not applied either
      [{ target1: 240, rpm: 5000 }, 'out-of-range', 'rpm'],
    ];
    for (const [body, error, field] of cases) {
      const r = await call('POST', '/api/control', body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
      assert.equal(r.json.error, error, r.text);
      assert.equal(r.json.field, field, r.text);
    }
    const r = await call('POST', '/api/control', { duty1: 70 });
    assert.deepEqual(r.json.allowed, { min: 25, max: 55, unit: '%' });
    assert.equal(r.json.got, 70);
    const t = await call('POST', '/api/control', { target1: 300 });
    assert.deepEqual(t.json.allowed, { min: 210, max: 245, unit: 'C' });
    const m = await call('POST', '/api/control', { rpm: 2000 });
    assert.deepEqual(m.json.allowed, { min: 0, max: 1800, unit: 'rpm' });
    const text = await call('POST', '/api/control', undefined, { raw: 'not json' });
    assert.equal(text.status, 400);
    assert.equal(text.json.error, 'bad-json', text.text);
    const after = (await call('GET', '/api/data')).json;
    assert.deepEqual(
      after.heaters.map((h: Json) => [h.target_c, h.duty_set_pct]),
      before.heaters.map((h: Json) => [h.target_c, h.duty_set_pct]),
    );
    assert.equal(after.motor.rpm_set, before.motor.rpm_set);
    assert.equal((await call('GET', '/api/status')).json.writes, writesBefore, 'no write reached the plant');
  });

  it('a malformed JSON body, an oversized body or a wrong content type is a JSON 400/413/415, with the editor on / (httpNodeMiddleware + httpAdminMiddleware)', async () => {
    await badBodies(base);
  });

  it('the same with the editor on /admin (httpNodeMiddleware alone), and without the middleware it was a 500', async () => {
    const moved = await startControlRuntime();
    try {
      await badBodies(`http://127.0.0.1:${moved.target.port}`);
    } finally {
      await moved.rt.kill('SIGTERM');
      moved.rt.cleanup();
    }
    // The defect the settings mend: the core http in node answers a body-parser error with a bare 500.
    const bare = await startControlRuntime({ bodyMiddleware: false });
    try {
      const r = await call('POST', '/api/control', undefined, { raw: '{"rpm": 100', base: `http://127.0.0.1:${bare.target.port}` });
      assert.equal(r.status, 500, r.text);
    } finally {
      await bare.rt.kill('SIGTERM');
      bare.rt.cleanup();
    }
  });

  it('a body over the size limit is a 413 and nothing is applied', async () => {
    const r = await call('POST', '/api/control', { rpm: 100, note: 'x'.repeat(2000) });
    assert.equal(r.status, 413, r.text);
    assert.equal(r.json.error, 'too-large');
    assert.equal(r.json.limit, 1024);
    assert.notEqual((await call('GET', '/api/data')).json.motor.rpm_set, 100);
    const g = await call('POST', '/api/gpio', { pin: 'relay1', value: true, pad: 'y'.repeat(1500) });
    assert.equal(g.status, 413);
  });

  it('log start/stop are idempotent, shown in /api/status, and telemetry reaches a JSONL file through rt-journey-egress', async () => {
    const s1 = await call('POST', '/api/log/start');
    assert.equal(s1.status, 200);
    assert.deepEqual([s1.json.logging, s1.json.changed], [true, true]);
    const s2 = await call('POST', '/api/log/start');
    assert.deepEqual([s2.json.logging, s2.json.changed], [true, false]);
    assert.equal(s2.json.since, s1.json.since);
    const st = await call('GET', '/api/status');
    assert.equal(st.json.logging.on, true);
    const dir = join(c.rt.userDir, 'control-api');
    const lines = await waitFor(
      () => {
        if (!existsSync(dir)) return null;
        const f = readdirSync(dir).filter((x) => x.endsWith('.jsonl'));
        const all = f.flatMap((x) => readFileSync(join(dir, x), 'utf8').split('\n').filter(Boolean));
        return all.length >= 10 ? all : null;
      },
      10_000,
      '10 telemetry lines on disk',
    );
    const rec = JSON.parse(lines![0]) as Json;
    assert.equal(rec.temps_c.length, 2);
    assert.equal(typeof rec.rpm, 'number');
    const gpio = await call('GET', '/api/gpio');
    assert.equal(gpio.json.pins.led_log, true, 'the log LED is on while logging');
    const e1 = await call('POST', '/api/log/stop');
    assert.deepEqual([e1.json.logging, e1.json.changed], [false, true]);
    const e2 = await call('POST', '/api/log/stop');
    assert.deepEqual([e2.json.logging, e2.json.changed], [false, false]);
    const records = (await call('GET', '/api/status')).json.logging.records;
    assert.ok(records >= 10);
    await sleep(400);
    const st2 = await call('GET', '/api/status');
    assert.equal(st2.json.logging.on, false);
    assert.equal(st2.json.logging.records, records, 'no records after stop');
  });

  it('GPIO round trip: a relay written is read back; read-only and unknown pins and bad values are 400', async () => {
    const g0 = await call('GET', '/api/gpio');
    assert.equal(g0.status, 200);
    assert.equal(g0.json.pins.relay1, false);
    assert.deepEqual(g0.json.writable, ['relay1', 'relay2', 'led_user']);
    const w = await call('POST', '/api/gpio', { pin: 'relay1', value: true });
    assert.equal(w.status, 200, w.text);
    assert.equal(w.json.value, true);
    assert.equal((await call('GET', '/api/gpio')).json.pins.relay1, true);
    const w2 = await call('POST', '/api/gpio', { pin: 'relay1', value: 0 });
    assert.equal(w2.json.value, false);
    assert.equal((await call('GET', '/api/gpio')).json.pins.relay1, false);
    const ro = await call('POST', '/api/gpio', { pin: 'led_fault', value: true });
    assert.equal(ro.status, 400);
    assert.equal(ro.json.field, 'pin');
    assert.deepEqual(ro.json.allowed, ['relay1', 'relay2', 'led_user']);
    const bv = await call('POST', '/api/gpio', { pin: 'relay2', value: 'on' });
    assert.equal(bv.status, 400);
    assert.equal(bv.json.field, 'value');
    assert.equal((await call('GET', '/api/gpio')).json.pins.led_fault, false);
  });

  it('the perf monitor health report is served for the load test (GET /api/health)', async () => {
    const h = await waitFor(async () => {
      const r = await call('GET', '/api/health');
      return r.status === 200 && r.json.eventLoop ? r.json : null;
    }, 15_000, 'a health report');
    assert.ok(Array.isArray(h!.topSlowNodes));
  });

  it('smoke: the four workloads at rate-x 1 for 20 s, within 10x the SLOs, invalid writes answered 400', async function () {
    this.timeout(120_000);
    // A runtime set up as `npm run loadtest` sets it up (the editor on /admin).
    const lt = await startControlRuntime();
    let r: Awaited<ReturnType<typeof runLoad>>;
    try {
      r = await runLoad(lt.target, 1, 20, { warmupS: 2 });
    } finally {
      await lt.rt.kill('SIGTERM');
      lt.rt.cleanup();
    }
    // the generator reports its own lateness and event-loop delay, and the machine's load
    assert.ok(Number.isFinite(r.genLagP99) && Number.isFinite(r.genLoopP99) && r.genLoopMax >= r.genLoopP99, JSON.stringify(r));
    assert.ok(r.loadBefore >= 0 && r.loadAfter >= 0);
    for (const g of GROUPS) {
      const s = r.groups[g];
      assert.ok(s.sent > 0, `${g}: requests sent`);
      assert.ok(s.p95 <= 10 * SLOS[g].p95, `${g}: p95 ${s.p95} ms`);
      assert.ok(s.p99 <= 10 * SLOS[g].p99, `${g}: p99 ${s.p99} ms`);
      assert.ok(s.non2xxPct <= 10 * SLOS[g].non2xxPct, `${g}: non-2xx ${s.non2xxPct} %`);
    }
    // 20 req/s of writes, 5 % invalid: each answered 400 as expected (not counted as errors)
    assert.ok(r.groups.writes.expected400 > 0, 'some invalid writes were sent and refused');
    assert.ok(r.groups.reads.sent >= 700, `reads sent ${r.groups.reads.sent} (40/s for 20 s)`);
  });
});
