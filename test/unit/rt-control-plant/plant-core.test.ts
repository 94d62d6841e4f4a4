// rt-control-plant's pure parts: validation (schema, ranges, size), the
// controller over the simulated HAL in virtual time (thermostat, ramp, safety
// cut-outs, status LEDs), the seqlock snapshot, the operation routing.
import assert from 'node:assert/strict';

import { readConfig } from '../../../nodes/rt-control-plant/plant-config';
import {
  bodySize,
  F,
  opOf,
  PlantController,
  SnapshotCell,
  validateControl,
  validateGpio,
} from '../../../nodes/rt-control-plant/plant-core';
import { SimPlantHal } from '../../../nodes/rt-control-plant/sim-plant';

const SAFETY = { overTempC: 260, hysteresisC: 10, rpmLimit: 1900 };
const START = { targets: [220, 220], dutySets: [40, 40], rpmSet: 0 };

function run(hal: SimPlantHal, ctl: PlantController, seconds: number, dtS = 0.02, logging = false): void {
  for (let t = 0; t < seconds; t += dtS) {
    hal.advance(dtS);
    ctl.tick(t * 1000, logging);
  }
}

describe('rt-control-plant core', () => {
  describe('validateControl', () => {
    it('accepts every field at both ends of its range', () => {
      for (const body of [{ target1: 210 }, { target2: 245 }, { duty1: 25 }, { duty2: 55 }, { rpm: 0 }, { rpm: 1800 }, { target1: 222.5, duty1: 33, rpm: 900 }]) {
        const r = validateControl(body, 40, 1024);
        assert.equal(r.ok, true, JSON.stringify(body));
        if (r.ok) assert.deepEqual(r.value, body);
      }
    });
    it('refuses just outside a range, naming the field and the range', () => {
      const cases: Array<[object, string, number, number]> = [
        [{ target1: 209.9 }, 'target1', 210, 245],
        [{ target2: 245.1 }, 'target2', 210, 245],
        [{ duty1: 24 }, 'duty1', 25, 55],
        [{ duty2: 56 }, 'duty2', 25, 55],
        [{ rpm: -0.5 }, 'rpm', 0, 1800],
        [{ rpm: 1800.5 }, 'rpm', 0, 1800],
      ];
      for (const [body, field, min, max] of cases) {
        const r = validateControl(body, 20, 1024);
        assert.equal(r.ok, false);
        if (r.ok) continue;
        assert.equal(r.refusal.status, 400);
        assert.equal(r.refusal.body.error, 'out-of-range');
        assert.equal(r.refusal.body.field, field);
        assert.deepEqual({ min: (r.refusal.body.allowed as { min: number }).min, max: (r.refusal.body.allowed as { max: number }).max }, { min, max });
        assert.equal(r.refusal.why.code, 'bad-out-of-range');
      }
    });
    it('schema: not an object, empty, unknown fields, non-numbers (NaN, strings, null); oversize is a 413', () => {
      const err = (body: unknown, size = 10): string => {
        const r = validateControl(body, size, 1024);
        return r.ok ? 'ok' : `${r.refusal.status} ${r.refusal.body.error} ${r.refusal.body.field ?? ''}`.trim();
      };
      assert.equal(err(null), '400 not-object');
      assert.equal(err('rpm=5'), '400 not-object');
      assert.equal(err([{ rpm: 5 }]), '400 not-object');
      assert.equal(err({}), '400 empty');
      assert.equal(err({ rpm: 5, x: 1 }), '400 unknown-field x');
      assert.equal(err({ rpm: '5' }), '400 not-number rpm');
      assert.equal(err({ rpm: null }), '400 not-number rpm');
      assert.equal(err({ duty1: Number.NaN }), '400 not-number duty1');
      assert.equal(err({ rpm: 5 }, 1025), '413 too-large');
      assert.equal(err({ rpm: 5 }, 1024), 'ok');
    });
  });

  it('validateGpio: writable pins only, boolean or 0/1', () => {
    assert.deepEqual(validateGpio({ pin: 'relay2', value: 1 }, 10, 1024), { ok: true, value: { pin: 'relay2', value: true } });
    assert.deepEqual(validateGpio({ pin: 'led_user', value: false }, 10, 1024), { ok: true, value: { pin: 'led_user', value: false } });
    const ro = validateGpio({ pin: 'led_run', value: true }, 10, 1024);
    assert.equal(ro.ok ? '' : ro.refusal.body.field, 'pin');
    const bad = validateGpio({ pin: 'relay1', value: 'yes' }, 10, 1024);
    assert.equal(bad.ok ? '' : bad.refusal.body.error, 'not-boolean');
    const extra = validateGpio({ pin: 'relay1', value: true, x: 1 }, 10, 1024);
    assert.equal(extra.ok ? '' : extra.refusal.body.field, 'x');
    assert.equal(validateGpio({ pin: 'relay1', value: true }, 5000, 1024).ok, false);
  });

  it('bodySize: Content-Length when given, else the JSON length', () => {
    assert.equal(bodySize('123', {}), 123);
    assert.equal(bodySize(undefined, { a: 'xx' }), 10); // {"a":"xx"}
  });

  it('opOf: from the path and method, or from msg.topic without a request', () => {
    assert.equal(opOf('', 'GET', '/api/status'), 'status');
    assert.equal(opOf('', 'GET', '/api/data'), 'data');
    assert.equal(opOf('', 'POST', '/api/control'), 'control');
    assert.equal(opOf('', 'POST', '/api/log/start'), 'log-start');
    assert.equal(opOf('', 'POST', '/api/log/stop/'), 'log-stop');
    assert.equal(opOf('', 'GET', '/api/gpio'), 'gpio-get');
    assert.equal(opOf('', 'POST', '/api/gpio'), 'gpio-set');
    assert.equal(opOf('control', undefined, undefined), 'control');
    assert.equal(opOf('gpio', undefined, undefined), 'gpio-set');
    assert.equal(opOf('log/start', undefined, undefined), 'log-start');
    assert.equal(opOf('nope', undefined, undefined), null);
    assert.equal(opOf('', 'GET', '/api/other'), null);
  });

  it('config: defaults, and a value outside its limit is a problem', () => {
    const c = readConfig({ id: 'a', type: 'rt-control-plant' });
    assert.deepEqual([c.tickMs, c.safety.overTempC, c.safety.rpmLimit, c.maxBody, c.logMs, c.uiMs], [20, 260, 1900, 1024, 100, 500]);
    assert.equal(c.problems.length, 0);
    const bad = readConfig({ id: 'a', type: 'rt-control-plant', uiMs: 100, maxBody: 10 });
    assert.deepEqual(bad.problems.map((p) => (p.params as { field: string }).field).sort(), ['maxBody', 'uiMs']);
  });

  describe('controller over the simulated HAL (virtual time)', () => {
    it('heats toward the target at the set duty and then holds it (thermostat)', () => {
      const hal = new SimPlantHal({ startC: [200, 215] });
      const ctl = new PlantController(hal, SAFETY, START, 0);
      run(hal, ctl, 0.1);
      assert.equal(ctl.values[F.duty1], 40, 'heater 1 on at its duty below target');
      run(hal, ctl, 120);
      for (const h of [0, 1]) {
        const t = hal.readTemp(h);
        assert.ok(t > 217 && t < 222, `heater ${h + 1} holds near 220: ${t}`);
      }
      ctl.apply({ target1: 240, duty1: 55 }, 0);
      run(hal, ctl, 120);
      assert.ok(hal.readTemp(0) > 237 && hal.readTemp(0) < 242, `heater 1 near 240: ${hal.readTemp(0)}`);
    });

    it('a low duty cannot reach a high target: thermal lag toward the duty’s temperature', () => {
      const hal = new SimPlantHal({ startC: [25, 25] });
      const ctl = new PlantController(hal, SAFETY, { ...START, targets: [245, 245], dutySets: [25, 25] }, 0);
      run(hal, ctl, 10);
      const t10 = hal.readTemp(0);
      run(hal, ctl, 200);
      assert.ok(t10 > 25 && t10 < 100, `lags: ${t10} after 10 s`);
      assert.ok(hal.readTemp(0) < 160, `settles near 25 + 5 x 25: ${hal.readTemp(0)}`);
      assert.equal(ctl.values[F.duty1], 25);
    });

    it('the motor ramps toward its set point', () => {
      const hal = new SimPlantHal();
      const ctl = new PlantController(hal, SAFETY, START, 0);
      ctl.apply({ rpm: 1800 }, 0);
      run(hal, ctl, 1);
      assert.ok(hal.readRpm() > 800 && hal.readRpm() < 1000, `ramping: ${hal.readRpm()}`);
      run(hal, ctl, 2);
      assert.equal(hal.readRpm(), 1800);
      assert.equal(hal.readPin('led_run'), true);
    });

    it('over-temperature cuts the heater until it has cooled by the hysteresis; the fault LED shows it', () => {
      const hal = new SimPlantHal({ startC: [230, 200] });
      const ctl = new PlantController(hal, SAFETY, { ...START, targets: [245, 245] }, 0);
      run(hal, ctl, 0.1);
      assert.equal(ctl.values[F.duty1], 40);
      hal.disturb({ tempC: [265] });
      run(hal, ctl, 0.04);
      assert.equal(ctl.values[F.duty1], 0, 'heater 1 cut');
      assert.equal(ctl.values[F.duty2], 40, 'heater 2 unaffected');
      assert.equal(ctl.values[F.safety] & 1, 1);
      assert.equal(ctl.values[F.tripsOverTemp], 1);
      assert.equal(hal.readPin('led_fault'), true);
      hal.disturb({ tempC: [255] });
      run(hal, ctl, 0.04);
      assert.equal(ctl.values[F.duty1], 0, 'still cut above limit - hysteresis');
      hal.disturb({ tempC: [245] });
      run(hal, ctl, 0.04);
      assert.equal(ctl.values[F.safety] & 1, 0, 're-armed');
      assert.equal(hal.readPin('led_fault'), false);
    });

    it('a speed above the limit stops the motor until the next speed write', () => {
      const hal = new SimPlantHal();
      const ctl = new PlantController(hal, SAFETY, START, 0);
      ctl.apply({ rpm: 1500 }, 0);
      run(hal, ctl, 3);
      hal.disturb({ rpm: 1950 });
      run(hal, ctl, 0.04);
      assert.equal(ctl.values[F.safety] & 4, 4);
      assert.equal(ctl.values[F.rpmSet], 0);
      run(hal, ctl, 5);
      assert.equal(hal.readRpm(), 0, 'stopped');
      assert.equal(ctl.values[F.tripsOverspeed], 1);
      ctl.apply({ rpm: 600 }, 0);
      run(hal, ctl, 2);
      assert.equal(ctl.values[F.safety] & 4, 0);
      assert.equal(hal.readRpm(), 600);
    });
  });

  it('snapshot cell: readers get the last complete write; nothing before the first', () => {
    const cell = SnapshotCell.create();
    assert.equal(cell.read(), null);
    const hal = new SimPlantHal({ startC: [100, 150] });
    const ctl = new PlantController(hal, SAFETY, START, 1000);
    ctl.tick(5000, true);
    cell.write(ctl.values);
    const reader = new SnapshotCell(cell.sab);
    const s = reader.read()!;
    assert.equal(s.ts, 5000);
    assert.equal(s.started, 1000);
    assert.deepEqual(s.temps, [100, 150]);
    assert.deepEqual(s.targets, [220, 220]);
    assert.equal(s.gpio.led_log, true);
    assert.equal(s.gpio.relay1, false);
  });

  it('snapshot cell: a writer preempted mid-write never makes a read fail: the last stable copy is served', () => {
    const cell = SnapshotCell.create();
    const hal = new SimPlantHal({ startC: [100, 150] });
    const ctl = new PlantController(hal, SAFETY, START, 0);
    ctl.tick(1000, false);
    cell.write(ctl.values);
    const reader = new SnapshotCell(cell.sab);
    assert.equal(reader.read()!.ts, 1000);
    cell.holdWrite(); // the worker stopped between its two increments
    const s = reader.read();
    assert.ok(s, 'a read while the writer is held is not null');
    assert.equal(s.ts, 1000);
    cell.releaseWrite();
    ctl.tick(2000, false);
    cell.write(ctl.values);
    assert.equal(reader.read()!.ts, 2000);
  });
});
