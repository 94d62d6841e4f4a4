// Worker entry of rt-control-plant: runs each plant's controller loop on its
// HAL (simulated backend) every tick, publishes the latest state into the
// node's SharedArrayBuffer cell, and applies control and GPIO writes. It never
// waits for the main thread.
import { toWireError } from '../shared/protocol';
import { serveInstances } from '../shared/worker-runtime';
import { F, PlantController, SnapshotCell } from './plant-core';
import type { BatchResult, PlantCmd, PlantEvent, PlantInit, WriteCmd } from './plant-protocol';
import { SimPlantHal } from './sim-plant';

serveInstances<PlantInit, PlantCmd, PlantEvent>((init, ctx) => {
  const cell = new SnapshotCell(init.snapshot);
  const hal = new SimPlantHal();
  const ctl = new PlantController(hal, init.safety, init.initial, Date.now());
  let logging = false;
  let last = performance.now();
  let trips = { overTemp: 0, overspeed: 0 };
  const tick = (): void => {
    const t = performance.now();
    hal.advance((t - last) / 1000);
    last = t;
    ctl.tick(Date.now(), logging);
    cell.write(ctl.values);
    const v = ctl.values;
    const ot = v[F.tripsOverTemp];
    const os = v[F.tripsOverspeed];
    if (ot > trips.overTemp) ctx.emit({ t: 'safety', what: 'over-temp', value: Math.max(v[F.temp1], v[F.temp2]) });
    if (os > trips.overspeed) ctx.emit({ t: 'safety', what: 'overspeed', value: v[F.rpm] });
    trips = { overTemp: ot, overspeed: os };
  };
  tick();
  const timer = setInterval(tick, init.tickMs);
  /** Applies one write; the caller ticks (publishes) after it. */
  const write = (cmd: WriteCmd): unknown => {
    if (cmd.t === 'control') return ctl.apply(cmd.set, Date.now());
    hal.writePin(cmd.pin, cmd.value);
    return { pin: cmd.pin, value: hal.readPin(cmd.pin) };
  };
  return {
    onCommand(cmd) {
      switch (cmd.t) {
        case 'control':
        case 'gpio': {
          const r = write(cmd);
          tick();
          return r;
        }
        case 'batch': {
          const out: BatchResult[] = cmd.cmds.map((c) => {
            try {
              return { ok: true, value: write(c) };
            } catch (err) {
              return { ok: false, error: toWireError(err) };
            }
          });
          tick();
          return out;
        }
        case 'logging':
          logging = cmd.on;
          tick();
          return logging;
        case 'disturb':
          if (init.testHooks) {
            hal.disturb(cmd);
            tick();
          }
          return undefined;
      }
    },
    close() {
      clearInterval(timer);
      ctl.shutdown();
    },
  };
});
