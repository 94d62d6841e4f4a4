// The gpiocdev backend end to end in a Node-RED process, on a stand-in of
// its addon (test/helpers/gpiocdev-standin.ts, injected through the test-only
// settings rtEdgeTestHooks + rtEdgeGpiocdevModule; configured by
// RTEDGE_GPIOCDEV_STANDIN) and a temp-dir tree standing in for
// /sys/class/pwm (rtEdgePwmRoot). The stand-in records what the "hardware"
// saw (loads per thread, line requests) in a file; the motor's state is the
// sysfs tree itself.
// - two scales sample at the configured rate; a flow engine blocked 500 ms
//   costs no data-ready; full redeploys keep it working (the HAL thread ends
//   with its last scale and the addon loads again in the next one: it is
//   context-aware); a scale on a PWM channel in use is refused plainly;
// - the HAL thread crashes: the motor is stopped from the main thread, the
//   thread restarts, loads the addon again and samples on;
// - the addon missing: red status and a Catch-able error naming
//   npm run build:gpiocdev;
// - the motor fails safe: SIGTERM and an uncaught exception on the flow
//   engine both end with the motor off in the sysfs tree.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { openEditor } from '../helpers/dashboard';
import { GPIOCDEV_STANDIN_ENV, type GpiocdevStandinConfig } from '../helpers/gpiocdev-standin';
import { checkConversions, conversions, halFlows, hx, metric, records as recordsOf, scaleNode as pinScale } from '../helpers/hal-flows';
import { type ChildRuntime, startNodeRed } from '../helpers/nodered-child';
import { makePwmTree, pwmState } from '../helpers/pwm-tree';
import { repoRoot, sleep, tempDir, waitFor } from '../helpers/util';

const standin = join(__dirname, '..', 'helpers', 'gpiocdev-standin.js');
const dosingExample = join(repoRoot, 'examples', 'rt-dosing', '01 - Dose a target on the simulated scale.json');

interface Rec {
  t: string;
  thread?: number;
  offset?: number;
  /** load: each motor's kernel PWM [enable, duty_cycle] as the loading thread found it. */
  pwm?: Array<[number, number] | null>;
}
const records = (file: string): Rec[] => recordsOf<Rec>(file);

const GPIOCDEV = { backend: 'gpiocdev', gpioChip: '/dev/gpiochip0', doutBias: 'disabled', pwmChip: '0', pwmChannel: '' };
const scaleNode = (id: string, name: string, dout: number, sck: number, motor: number, rate = 80) => pinScale(GPIOCDEV, id, name, dout, sck, motor, rate);
const flows = (extra: object[] = []): object[] =>
  halFlows('gpiocdev', [scaleNode('scaleA', 'scale A', 5, 6, 18), scaleNode('scaleB', 'scale B', 22, 23, 13, 10)], extra);

describe('gpiocdev backend in a Node-RED process (stand-in of its addon, temp sysfs PWM tree)', function () {
  this.timeout(120_000);
  let rt: ChildRuntime | null = null;
  const tmp = tempDir('rtedge-gpiocdev-');
  let n = 0;
  afterEach(async () => {
    if (rt) {
      await rt.kill('SIGKILL');
      rt.cleanup();
      rt = null;
    }
  });
  after(() => tmp.cleanup());

  /** A Pi 4's PWM block as pwmchip0 (channel 0: GPIO 12/18, channel 1: GPIO 13/19), both channels exported. */
  function pwmRoot(): string {
    const root = join(tmp.dir, `sys${n++}`, 'class', 'pwm');
    makePwmTree(root, [{ n: 0, device: 'fe20c000.pwm', npwm: 2 }]);
    return root;
  }
  const start = (root: string, cfg: GpiocdevStandinConfig, more: { settingsSource?: string; settings?: object } = {}) =>
    startNodeRed({
      settings: { rtEdgeTestHooks: true, rtEdgeGpiocdevModule: standin, rtEdgePwmRoot: root, ...more.settings },
      settingsSource: more.settingsSource,
      env: { [GPIOCDEV_STANDIN_ENV]: JSON.stringify(cfg) },
    });

  it('samples at the configured rates; blocked flow engine; redeploys reload the addon in a new HAL thread; a PWM channel conflict is refused', async () => {
    const root = pwmRoot();
    const record = join(tmp.dir, 'hal.jsonl');
    const cfg: GpiocdevStandinConfig = {
      record,
      chips: [
        { dout: 5, sck: 6, motor: 18, pwmDir: join(root, 'pwmchip0', 'pwm0') },
        { dout: 22, sck: 23, motor: 13, sim: { sps: 10 }, pwmDir: join(root, 'pwmchip0', 'pwm1') },
        { dout: 24, sck: 25, motor: 12 },
      ],
    };
    rt = await start(root, cfg);
    const r = rt;
    await r.deploy(flows());
    const scrape = async (): Promise<string> => (await r.get('/metrics')).text;
    const samples = async (scale: string): Promise<number> => metric(await scrape(), 'rtedge_hx711_samples_total', `scale="${scale}"`);
    await waitFor(async () => (await samples('scaleA')) > 80 && (await samples('scaleB')) > 5, 20_000, 'both gpiocdev scales sampling').catch(async (e: Error) => {
      throw new Error(`${e.message}\n${(await scrape()).split('\n').filter((l) => /samples_total|bad_reads/.test(l)).join('\n')}\n${r.log().slice(-1500)}`);
    });

    // the configured rates, from the dialog's check (a fresh 2 s window)
    // (conversions: each a good sample or a counted bad read; on a starved machine many are "late", so the rate of
    // good samples is a benchmark figure, while every conversion being accounted for is the test's)
    type Check = { backend: string; windowS: number; samples: number; rate: number; bad: Record<string, number> };
    const [ca, cb] = await Promise.all(['scaleA', 'scaleB'].map(async (s) => JSON.parse((await r.get(`/rt-scale/${s}/check?seconds=2`)).text) as Check));
    const perS = (c: Check): number => checkConversions(c) / c.windowS;
    assert.equal(ca.backend, 'gpiocdev');
    assert.ok(ca.rate > 0 && perS(ca) > 60 && perS(ca) < 100, `scale A at 80 SPS: ${JSON.stringify(ca)}`);
    assert.ok(cb.rate > 0 && perS(cb) > 6 && perS(cb) < 14, `scale B at 10 SPS: ${JSON.stringify(cb)}`);

    // the flow engine blocked for 500 ms: the HAL thread misses no data-ready
    const before = await scrape();
    const noData = (t: string): number => metric(t, 'rtedge_hx711_bad_reads_total', 'scale="scaleA",reason="no_data"');
    const a0 = conversions(before, 'scaleA');
    assert.equal((await r.post('/inject/blk', {})).status, 200);
    await sleep(1500);
    const afterBlock = await scrape();
    assert.equal(noData(afterBlock), noData(before), 'no missed data-ready while the flow engine was blocked');
    assert.ok(conversions(afterBlock, 'scaleA') - a0 > 80, 'read every conversion on through the block (good or counted bad)');

    // full redeploys: every scale closes, the HAL thread ends with them and a new one loads the addon again
    for (let i = 0; i < 2; i++) {
      await r.deploy(flows(), 'full');
      await sleep(300);
      await waitFor(async () => (await samples('scaleA')) > 40, 20_000, `scale A sampling after redeploy ${i + 1}`);
    }
    const loads = records(record).filter((x) => x.t === 'load');
    assert.ok(new Set(loads.map((x) => x.thread)).size >= 2, `the addon loaded in ${loads.length} threads`);
    const req = records(record).filter((x) => x.t === 'request').length;
    const rel = records(record).filter((x) => x.t === 'release').length;
    assert.ok(req >= 3 * 4 && rel >= req - 4, `lines requested ${req}, released ${rel} (all but the running scales')`);

    // a third scale on GPIO 12: PWM channel 0 on a Pi 1-4, which scale A (GPIO 18) drives
    await r.deploy(flows([scaleNode('scaleC', 'scale C', 24, 25, 12), hx('hxC', 'scaleC')]), 'full');
    await waitFor(() => /motor GPIO 12 is on pwmchip0 channel 0, which scale "scale A" already drives \(GPIO 18\)/.test(r.log()), 15_000, 'the channel conflict reported');
    const a1 = await samples('scaleA');
    await waitFor(async () => (await samples('scaleA')) > a1 + 40, 10_000, 'scale A unaffected');
    assert.equal(pwmState(root, 0, 0).enable, 0, 'channel 0 untouched by scale C');
  });

  it('the HAL thread crashes: the motor is stopped from the main thread; the thread restarts, loads the addon again and samples on', async () => {
    const root = pwmRoot();
    const record = join(tmp.dir, 'crash.jsonl');
    const marker = join(tmp.dir, 'crashed');
    const flow = (JSON.parse(readFileSync(dosingExample, 'utf8')) as Array<Record<string, unknown>>).map((x) => (x.type === 'rt-scale' ? { ...x, backend: 'gpiocdev', gpioChip: '/dev/gpiochip0', pwmChip: '0' } : x));
    const trigger = join(tmp.dir, 'crash-now');
    rt = await start(root, { record, chips: [{ dout: 5, sck: 6, motor: 18, pwmDir: join(root, 'pwmchip0', 'pwm0') }], crashOnce: { trigger, marker } });
    const r2 = rt;
    await r2.deploy(flow);
    const samples2 = async (): Promise<number> => metric((await r2.get('/metrics')).text, 'rtedge_hx711_samples_total', 'scale="exd_scale"');
    await waitFor(async () => (await samples2()) > 160, 20_000, 'the gpiocdev scale sampling (settled and stable)');
    assert.equal((await r2.post('/inject/exd_100', {})).status, 200); // dose 100 g: several seconds of motor
    await waitFor(() => pwmState(root, 0, 0).enable === 1 && pwmState(root, 0, 0).duty > 0, 10_000, 'the motor running');
    writeFileSync(trigger, ''); // the HAL thread dies mid-dose
    await waitFor(() => existsSync(marker), 30_000, 'the HAL thread crashing');
    await waitFor(() => /gpiocdev stand-in: the HAL thread crashed/.test(r2.log()), 10_000, 'the crash reported');
    // written off from the flow engine's thread (asynchronously) as soon as it learns of the death
    await waitFor(() => pwmState(root, 0, 0).enable === 0 && pwmState(root, 0, 0).duty === 0, 2000, 'the motor off once the thread died');
    const s0 = await samples2();
    await waitFor(async () => (await samples2()) > s0 + 80, 30_000, 'sampling again after the restart');
    const crashed = Number(readFileSync(marker, 'utf8'));
    const loads = records(record).filter((x) => x.t === 'load');
    const next = loads.find((x, i) => x.thread !== crashed && i > loads.findIndex((y) => y.thread === crashed));
    assert.ok(next, 'the addon loaded again in a new thread after the crash');
    // the motor was already off when the new HAL thread loaded the addon (before it opened anything): the flow engine's thread stopped it
    assert.deepEqual(next.pwm, [[0, 0]]);
  });

  it('the addon missing: red status on the nodes and a Catch-able error naming npm run build:gpiocdev', async () => {
    const root = pwmRoot();
    rt = await start(root, {}, { settings: { rtEdgeGpiocdevModule: join(tmp.dir, 'not-built', 'rtedge_gpiocdev.node') } });
    const r = rt;
    await r.deploy(
      flows([
        { id: 'catchA', type: 'catch', z: 'tab1', name: '', scope: ['hxA'], uncaught: false, wires: [['fnCaught']] },
        { id: 'fnCaught', type: 'function', z: 'tab1', name: 'caught', func: "node.warn('CAUGHT ' + msg.error.message); return null;", outputs: 1, wires: [[]] },
        { id: 'statusA', type: 'status', z: 'tab1', name: '', scope: ['hxA'], wires: [['fnStatus']] },
        { id: 'fnStatus', type: 'function', z: 'tab1', name: 'status', func: "node.warn('STATUS ' + msg.status.fill + ' ' + msg.status.text); return null;", outputs: 1, wires: [[]] },
      ]),
    );
    await waitFor(() => /CAUGHT .*the gpiocdev backend's addon is not built/.test(r.log()), 15_000, 'the error reaching the Catch node').catch((e: Error) => {
      throw new Error(`${e.message}\n${r.log().slice(-3000)}`);
    });
    assert.match(r.log(), /CAUGHT .*run npm run build:gpiocdev once in the package's directory .* or pick the "simulated" backend/);
    await waitFor(() => /STATUS red /.test(r.log()), 5000, 'a red status');
    // the rest of the flows keep running
    assert.equal((await r.post('/inject/blk', {})).status, 200);
  });

  it('the rt-scale dialog: gpiocdev fields shown for that backend only, validated as the runtime does, with the build hint', async () => {
    const root = pwmRoot();
    rt = await start(root, { chips: [{ dout: 5, sck: 6, motor: 18 }, { dout: 22, sck: 23, motor: 13 }] });
    const r = rt;
    await r.deploy(flows());
    const { browser, page } = await openEditor(r, 'scaleA');
    try {
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const js = <T>(src: string): Promise<T> => page.evaluate(src) as Promise<T>;
      await js("RED.editor.editConfig('', 'rt-scale', 'scaleA')");
      await page.locator('#node-config-input-gpioChip').waitFor({ state: 'visible', timeout: 20_000 });
      assert.equal(await js<string>("$('#node-config-input-backend option:selected').text()"), 'gpiocdev (Raspberry Pi 5 or no root: GPIO character device)');
      assert.equal(await page.locator('#node-config-input-gpioChip').inputValue(), '/dev/gpiochip0');
      assert.equal(await page.locator('#node-config-input-pwmChip').inputValue(), '0');
      assert.match(await js<string>("$('.form-tips.rt-scale-gpiocdev').text()"), /npm run build:gpiocdev/);
      await js("$('#node-config-input-backend').val('simulated').trigger('change')");
      assert.equal(await page.locator('#node-config-input-gpioChip').isVisible(), false, 'hidden for the simulated backend');
      await js("$('#node-config-input-backend').val('gpiocdev').trigger('change')");
      assert.equal(await page.locator('#node-config-input-gpioChip').isVisible(), true);
      const valid = (field: string, v: string): Promise<boolean> => js<boolean>(`!!RED.nodes.getType('rt-scale').defaults.${field}.validate.call({}, ${JSON.stringify(v)})`);
      assert.deepEqual(await Promise.all([valid('pwmChannel', ''), valid('pwmChannel', '3'), valid('pwmChannel', '4'), valid('pwmChip', '63'), valid('pwmChip', '64')]), [true, true, false, true, false]);
      assert.deepEqual(await Promise.all([valid('gpioChip', ''), valid('gpioChip', '/dev/gpiochip4'), valid('gpioChip', 'gpiochip0; rm')]), [true, true, false]);
      assert.equal(await valid('backend', 'gpiocdev'), true);
      await js('RED.tray.close()');
      assert.deepEqual(errors, []);
    } finally {
      await browser.close().catch(() => undefined);
    }
  });

  async function dosing(o: { settingsSource?: string; extra?: object[] }): Promise<{ r: ChildRuntime; root: string }> {
    const root = pwmRoot();
    const flow = (JSON.parse(readFileSync(dosingExample, 'utf8')) as Array<Record<string, unknown>>).map((x) => (x.type === 'rt-scale' ? { ...x, backend: 'gpiocdev', gpioChip: '/dev/gpiochip0', pwmChip: '0' } : x));
    rt = await start(root, { chips: [{ dout: 5, sck: 6, motor: 18, pwmDir: join(root, 'pwmchip0', 'pwm0') }] }, { settingsSource: o.settingsSource });
    const r = rt;
    await r.deploy([...flow, ...(o.extra ?? [])]);
    await waitFor(async () => metric((await r.get('/metrics')).text, 'rtedge_hx711_samples_total', 'scale="exd_scale"') > 160, 20_000, 'the gpiocdev scale sampling (settled and stable)');
    assert.equal((await r.post('/inject/exd_100', {})).status, 200); // dose 100 g: several seconds of motor
    await waitFor(() => pwmState(root, 0, 0).enable === 1 && pwmState(root, 0, 0).duty > 0, 10_000, 'the motor running');
    return { r, root };
  }

  it('SIGTERM mid-dose: Node-RED closes its flows and the kernel PWM is off', async () => {
    const { r, root } = await dosing({});
    const exit = await r.kill('SIGTERM', 15_000);
    assert.equal(exit.signal, null, 'exited by itself');
    assert.deepEqual(pwmState(root, 0, 0), { enable: 0, period: 100_000, duty: 0 });
  });

  it('an uncaught exception on the flow engine (Node-RED exits without closing the flows): the kernel PWM is off', async () => {
    const { r, root } = await dosing({
      settingsSource: 'functionGlobalContext: { boom: () => setImmediate(() => { throw new Error("boom on the flow engine"); }) },',
      extra: [
        { id: 'boomInj', type: 'inject', z: 'ex_dosing_tab', name: 'boom', props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', once: false, wires: [['boomFn']] },
        { id: 'boomFn', type: 'function', z: 'ex_dosing_tab', name: 'throw later', func: "global.get('boom')(); return msg;", outputs: 1, wires: [[]] },
      ],
    });
    assert.equal(pwmState(root, 0, 0).enable, 1);
    const exited = new Promise<number | null>((resolve) => r.proc.once('exit', (code) => resolve(code)));
    assert.equal((await r.post('/inject/boomInj', {})).status, 200);
    assert.equal(await exited, 1, `Node-RED's uncaughtException handler exits with 1:\n${r.log().slice(-2000)}`);
    assert.match(r.log(), /boom on the flow engine/);
    assert.deepEqual([pwmState(root, 0, 0).enable, pwmState(root, 0, 0).duty], [0, 0]);
  });
});
