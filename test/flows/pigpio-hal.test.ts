// The pigpio backend end to end in a Node-RED process, on the pigpio stand-in
// (test/helpers/pigpio-standin.ts, injected through the test-only settings
// rtEdgeTestHooks + rtEdgePigpioModule; configured by RTEDGE_PIGPIO_STANDIN).
// The stand-in loads once per process, as the addon does, and records what
// the "hardware" saw (loads, init, every PWM write, signals) in a file that
// outlives the process.
// - one HAL thread for the process: two scales sample; a flow engine blocked
//   500 ms costs the HAL nothing; one scale's failure stops that scale only;
//   full redeploys re-attach to the same thread (pigpio loaded once, never
//   refused); a scale on a PWM channel already in use is refused plainly;
//   pigpio's socket and FIFO interfaces are off;
// - the motor fails safe: SIGTERM with pigpio's signal handlers in place
//   (modelled on the main thread by pigpio-standin-signals.ts) and an uncaught
//   exception on the flow engine both end with the motor off.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { checkConversions, halFlows, hx, metric, records as recordsOf, scaleNode as pinScale } from '../helpers/hal-flows';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { STANDIN_ENV, type StandinConfig } from '../helpers/pigpio-standin-core';
import { repoRoot, sleep, tempDir, waitFor } from '../helpers/util';

const standin = join(__dirname, '..', 'helpers', 'pigpio-standin.js');
const signalsPreload = join(__dirname, '..', 'helpers', 'pigpio-standin-signals.js');
const dosingExample = join(repoRoot, 'examples', 'rt-dosing', '01 - Dose a target on the simulated scale.json');

interface Rec {
  t: string;
  gpio?: number;
  permille?: number;
  ifFlags?: number;
  socket?: string | null;
  fifo?: string | null;
  handledBy?: string;
  thread?: number;
}
const records = (file: string): Rec[] => recordsOf<Rec>(file);
const duties = (file: string, gpio: number): number[] => records(file).filter((r) => r.t === 'pwm' && r.gpio === gpio).map((r) => r.permille!);

const scaleNode = (id: string, name: string, dout: number, sck: number, motor: number) => pinScale({ backend: 'pigpio' }, id, name, dout, sck, motor);
const flows = (extra: object[] = []): object[] =>
  halFlows('pigpio', [scaleNode('scaleA', 'scale A', 5, 6, 18), scaleNode('scaleB', 'scale B', 22, 23, 13)], extra);

describe('pigpio backend in a Node-RED process (pigpio stand-in)', function () {
  this.timeout(120_000);
  let rt: ChildRuntime | null = null;
  const tmp = tempDir('rtedge-pigpio-');
  afterEach(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
      rt = null;
    }
  });
  after(() => tmp.cleanup());

  it('one HAL thread for the process: blocked flow engine, one scale failing, redeploys and a PWM channel conflict', async () => {
    const record = join(tmp.dir, 'hal.jsonl');
    const cfg: StandinConfig = {
      record,
      lockDir: tmp.dir,
      chips: [
        { dout: 5, sck: 6, motor: 18 },
        // scale B's DOUT fails after a while (a broken pin): scale B stops, not the thread
        { dout: 22, sck: 23, motor: 13, failAfterReads: 20_000 },
        { dout: 24, sck: 25, motor: 12 },
      ],
    };
    rt = await startNodeRed({ settings: { rtEdgeTestHooks: true, rtEdgePigpioModule: standin }, env: { [STANDIN_ENV]: JSON.stringify(cfg) } });
    const r = rt;
    await r.deploy(flows());
    const scrape = async (): Promise<string> => (await r.get('/metrics')).text;
    const samples = async (scale: string): Promise<number> => metric(await scrape(), 'rtedge_hx711_samples_total', `scale="${scale}"`);
    await waitFor(async () => (await samples('scaleA')) > 80 && (await samples('scaleB')) > 80, 20_000, 'both pigpio scales sampling').catch(async (e: Error) => {
      throw new Error(`${e.message}\n${(await scrape()).split('\n').filter((l) => /samples_total|bad_reads/.test(l)).join('\n')}\n${r.log().slice(-1500)}`);
    });

    // the dialog's check button: a fresh window on the deployed scale, not the figures since it started
    const checkStart = await samples('scaleA');
    const check = await r.get('/rt-scale/scaleA/check?seconds=2');
    const after = await samples('scaleA');
    assert.equal(check.status, 200, check.text);
    type Check = { backend: string; windowS: number; samples: number; rate: number | null; bad: Record<string, number>; latencyMs: { p50: number; p99: number; max: number }; clockHighMaxUs: number };
    const c = JSON.parse(check.text) as Check;
    assert.equal(c.backend, 'pigpio');
    assert.ok(c.windowS >= 2 && c.windowS < 4, `window ${c.windowS} s`);
    assert.ok(c.samples > 0 && c.samples <= after - checkStart, `window samples ${c.samples}, scrapes around it ${checkStart} -> ${after}`);
    // the window's conversions read, each a sample or a counted bad read (no_data, a period with nothing read, is not
    // one). On a starved machine many are "late": the rate of good samples is a benchmark figure, not a test's; that
    // every conversion read is accounted for is the test's.
    const conversions = checkConversions(c);
    assert.ok(c.rate !== null && c.rate > 0 && Math.abs(c.rate - c.samples / c.windowS) < 1, `rate ${c.rate}/s: ${check.text}`);
    assert.ok(conversions / c.windowS > 40 && conversions / c.windowS < 120, `${conversions} conversions in ${c.windowS} s at 80 SPS: ${check.text}`);
    assert.deepEqual(Object.keys(c.bad).sort(), ['dout_low', 'frame_long', 'late', 'no_data', 'not_ready', 'overrun', 'power_down', 'saturated', 'settling', 'stuck']);
    assert.ok(c.latencyMs.p50 > 0 && c.latencyMs.max >= c.latencyMs.p99, JSON.stringify(c.latencyMs));
    assert.ok(c.clockHighMaxUs > 0);
    const since = JSON.parse((await r.get('/rt-scale/scaleA/check?seconds=0')).text) as Check;
    assert.ok(since.windowS === 0 && since.samples >= after, 'seconds=0: the figures since the scale started');
    const bad = await r.get('/rt-scale/scaleA/check?seconds=99');
    assert.equal(bad.status, 400);
    assert.match(bad.text, /0 to 30/);

    const init = records(record).filter((x) => x.t === 'init');
    assert.equal(init.length, 1);
    assert.equal(init[0].socket, null, 'the socket interface (port 8888) is off');
    assert.equal(init[0].fifo, null, 'the FIFO interface is off');

    // the flow engine blocked for 500 ms: the HAL thread misses no data-ready
    const before = await scrape();
    const noData = (t: string) => metric(t, 'rtedge_hx711_bad_reads_total', 'scale="scaleA",reason="no_data"');
    assert.equal((await r.post('/inject/blk', {})).status, 200);
    await sleep(1500);
    const afterBlock = await scrape();
    assert.equal(noData(afterBlock), noData(before), 'no missed data-ready while the flow engine was blocked');

    // scale B's pin fails: scale B stops with a plain error; scale A goes on
    await waitFor(() => /The scale stopped \(its motor is off\)/.test(r.log()), 30_000, 'scale B failing');
    assert.match(r.log(), /pigpio error -3 in gpioRead/);
    const a0 = await samples('scaleA');
    await waitFor(async () => (await samples('scaleA')) > a0 + 40, 10_000, 'scale A sampling after scale B failed');

    // full redeploys: every scale closes and starts again on the same HAL thread
    for (let i = 0; i < 2; i++) {
      await r.deploy(flows(), 'full');
      await sleep(300);
      await waitFor(async () => (await samples('scaleA')) > 40, 20_000, `scale A sampling after redeploy ${i + 1}`);
    }
    const kinds = records(record).map((x) => x.t);
    assert.equal(kinds.filter((k) => k === 'load').length, 1, 'pigpio loaded once in the process');
    assert.equal(kinds.filter((k) => k === 'refused').length, 0, 'never loaded a second time (it would be refused)');
    assert.equal(new Set(records(record).filter((x) => x.t === 'pwm').map((x) => x.thread)).size, 1, 'one thread drives every pin');

    // a third scale on GPIO 12: PWM channel 0, which scale A (GPIO 18) drives
    await r.deploy(flows([scaleNode('scaleC', 'scale C', 24, 25, 12), hx('hxC', 'scaleC')]), 'full');
    await waitFor(() => /PWM channel 0, which scale "scale A" already drives \(GPIO 18\)/.test(r.log()), 15_000, 'the channel conflict reported');
    const a1 = await samples('scaleA');
    await waitFor(async () => (await samples('scaleA')) > a1 + 40, 10_000, 'scale A unaffected');
    assert.ok(!duties(record, 12).some((d) => d > 0), 'scale C never drove its motor');
  });

  it('the HAL thread dies: every pigpio scale reports it plainly (worker-dead error), also after a redeploy; no new thread, no samples claimed', async () => {
    const record = join(tmp.dir, 'dead.jsonl');
    const cfg: StandinConfig = { record, lockDir: tmp.dir, chips: [{ dout: 5, sck: 6, motor: 18, crashThreadAfterReads: 8000 }, { dout: 22, sck: 23, motor: 13 }] };
    rt = await startNodeRed({ settings: { rtEdgeTestHooks: true, rtEdgePigpioModule: standin }, env: { [STANDIN_ENV]: JSON.stringify(cfg) } });
    const r = rt;
    await r.deploy(flows());
    const dead = /the pigpio HAL thread has died \(pigpio stand-in: the HAL thread crashed\)/g;
    await waitFor(() => (r.log().match(dead) ?? []).length >= 2, 30_000, 'both scales reporting the dead HAL thread');
    await r.deploy(flows(), 'full');
    const before = (r.log().match(dead) ?? []).length;
    await waitFor(() => (r.log().match(dead) ?? []).length >= before + 2, 15_000, 'the same plain error after a redeploy');
    const kinds = records(record).map((x) => x.t);
    assert.equal(kinds.filter((k) => k === 'load').length, 1);
    assert.equal(kinds.filter((k) => k === 'refused').length, 0, 'no new thread tried to load pigpio again');
    const text = (await r.get('/metrics')).text;
    assert.ok(!(metric(text, 'rtedge_hx711_samples_total', 'scale="scaleA"') > 0), 'no samples claimed after the death');
  });

  async function dosing(o: { settingsSource?: string; extra?: object[] }): Promise<{ r: ChildRuntime; record: string }> {
    const record = join(tmp.dir, `dose-${Date.now()}.jsonl`);
    const cfg: StandinConfig = { record, lockDir: tmp.dir, signals: true, chips: [{ dout: 5, sck: 6, motor: 18 }] };
    const flow = (JSON.parse(readFileSync(dosingExample, 'utf8')) as Array<Record<string, unknown>>).map((n) => (n.type === 'rt-scale' ? { ...n, backend: 'pigpio' } : n));
    rt = await startNodeRed({
      settings: { rtEdgeTestHooks: true, rtEdgePigpioModule: standin },
      settingsSource: o.settingsSource,
      env: { [STANDIN_ENV]: JSON.stringify(cfg) },
      execArgv: ['--require', signalsPreload],
    });
    const r = rt;
    await r.deploy([...flow, ...(o.extra ?? [])]);
    await waitFor(async () => metric((await r.get('/metrics')).text, 'rtedge_hx711_samples_total', 'scale="exd_scale"') > 160, 20_000, 'the pigpio scale sampling (settled and stable)');
    assert.ok(records(record).some((x) => x.t === 'sigaction'), 'pigpio took the signal handlers over at initialise');
    assert.equal((await r.post('/inject/exd_100', {})).status, 200); // dose 100 g: several seconds of motor
    await waitFor(() => duties(record, 18).some((d) => d > 0), 10_000, 'the motor running');
    return { r, record };
  }

  it('SIGTERM with pigpio\'s signal handlers installed: Node-RED closes its flows and the motor is off', async () => {
    const { r, record } = await dosing({});
    const running = duties(record, 18);
    assert.ok(running[running.length - 1] > 0, `motor on mid-dose: ${running.join(',')}`);
    const exit = await r.kill('SIGTERM', 15_000);
    assert.equal(exit.signal, null, 'exited by itself');
    assert.ok(!records(record).some((x) => x.t === 'signal' && x.handledBy === 'pigpio'), 'Node\'s handler ran, not pigpio\'s');
    const after = duties(record, 18);
    assert.equal(after[after.length - 1], 0, `last motor duty before exit: ${after.slice(-5).join(',')}`);
  });

  it('an uncaught exception on the flow engine (Node-RED exits without closing the flows): the motor is off', async () => {
    const { r, record } = await dosing({
      settingsSource: 'functionGlobalContext: { boom: () => setImmediate(() => { throw new Error("boom on the flow engine"); }) },',
      extra: [
        { id: 'boomInj', type: 'inject', z: 'ex_dosing_tab', name: 'boom', props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, wires: [['boomFn']] },
        { id: 'boomFn', type: 'function', z: 'ex_dosing_tab', name: 'throw later', func: "global.get('boom')(); return msg;", outputs: 1, wires: [[]] },
      ],
    });
    const exited = new Promise<number | null>((resolve) => r.proc.once('exit', (code) => resolve(code)));
    assert.equal((await r.post('/inject/boomInj', {})).status, 200);
    const code = await exited;
    assert.equal(code, 1, `Node-RED's uncaughtException handler exits with 1:\n${r.log().slice(-2000)}`);
    assert.match(r.log(), /boom on the flow engine/);
    const after = duties(record, 18);
    assert.ok(after.length >= 2, after.join(','));
    assert.equal(after[after.length - 1], 0, `last motor duty before exit: ${after.slice(-5).join(',')}`);
  });
});
