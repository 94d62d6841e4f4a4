// The HAL worker: one thread per process owns every scale's pins (pigpio is
// not context-aware and allows one user per Pi). Once pigpio is loaded here,
// the host keeps this thread for the life of the process (keepForProcess):
// scales are attached and detached on it across redeploys, and one scale's
// failure stops that scale only (hal-pigpio.ts). Each rt-scale config node
// attaches one instance: its HAL, its sampling engine, its ring. Consumers of
// a scale's samples (e.g. each rt-dosing node) attach leases of their own to
// this worker: their module is loaded here by the path they give, and runs on
// the scale's sample stream in this thread (see scale-consumer.ts). This file
// imports no consumer.
import { CodedError } from '../shared/coded';
import { SharedMetrics } from '../shared/shared-metrics';
import { SpscRing } from '../shared/spsc-ring';
import { raiseThreadPriority } from '../shared/thread-priority';
import { type InstanceContext, type InstanceHandler, keepForProcess, serveInstances } from '../shared/worker-runtime';
import { openHal, type ScaleHal } from './hal';
import { periodUs } from './hx711-protocol';
import type { ConsumerAttach, ConsumerHost, ConsumerModule, ScaleConsumer } from './scale-consumer';
import { ScaleEngine } from './scale-engine';
import { SCALE_METRICS, type ScaleCmd, type ScaleEvent, type ScaleInit } from './scale-protocol';

interface Instance {
  engine: ScaleEngine;
  hal: ScaleHal;
  periodUs: number;
  consumers: Set<ScaleConsumer>;
}

/** The running scale instances of this worker, by rt-scale node id. */
const instances = new Map<string, Instance>();
const waiters = new Map<string, Set<() => void>>();

/** A consumer's attach may arrive before its scale's (a restart re-attaches every lease): wait for it, bounded. */
function instanceOf(scaleId: string, timeoutMs: number): Promise<Instance> {
  const inst = instances.get(scaleId);
  if (inst) return Promise.resolve(inst);
  return new Promise((resolve, reject) => {
    let set = waiters.get(scaleId);
    if (!set) waiters.set(scaleId, (set = new Set()));
    const s = set;
    const wake = (): void => {
      clearTimeout(timer);
      s.delete(wake);
      const i = instances.get(scaleId);
      if (i) resolve(i);
    };
    const timer = setTimeout(() => {
      s.delete(wake);
      reject(new CodedError('no-scale-instance'));
    }, timeoutMs);
    s.add(wake);
  });
}

function attachScale(init: ScaleInit, ctx: InstanceContext<ScaleEvent>): InstanceHandler<ScaleCmd> {
  const nice = raiseThreadPriority(init.nice);
  if (init.nice !== 0) ctx.emit({ t: 'priority', nice, asked: init.nice });
  let engineRef: ScaleEngine | null = null;
  const hal = openHal(init.hal, {
    scale: init.name,
    onFailure: (err) => {
      // this scale only: its motor is already off; the HAL thread and the other scales go on
      const e = err as { code?: string; params?: Record<string, never> };
      ctx.emit({ t: 'failed', error: { code: e.code ?? 'hal-failed', params: e.params ?? {} } });
      engineRef?.close();
    },
    hooks: { onLoaded: keepForProcess },
  }); // throws a CodedError (pigpio missing, pin busy...): attach fails, the node shows its text
  if (init.hal.backend === 'pigpio') ctx.emit({ t: 'pigpio' });
  // the main thread stops a kernel-PWM motor itself on exit and when this thread dies
  const pwmDir = (hal as { pwm?: { dir: string } }).pwm?.dir;
  if (pwmDir) ctx.emit({ t: 'motor-pwm', dir: pwmDir });
  const exitAck = init.exitAck ? new Int32Array(init.exitAck) : null;
  const metrics = SharedMetrics.attach(SCALE_METRICS, init.metrics);
  const period = periodUs(init.hal.sps);
  const engine = new ScaleEngine(
    hal,
    { gain: init.gain, cal: init.cal, sampler: init.sampler, calSamples: init.calSamples, periodUs: period },
    SpscRing.attach(init.ring),
    metrics,
    (ev) => ctx.emit(ev),
  );
  engineRef = engine;
  engine.start();
  const inst: Instance = { engine, hal, periodUs: period, consumers: new Set() };
  instances.set(init.scaleId, inst);
  for (const wake of [...(waiters.get(init.scaleId) ?? [])]) wake();
  const noiseTimer = setInterval(() => engine.noise(), 1000);
  return {
    onCommand(cmd) {
      switch (cmd.t) {
        case 'tare':
          return engine.tare();
        case 'calibrate':
          return engine.calibrate(cmd.knownCg);
        case 'power':
          engine.power(cmd.on);
          return cmd.on;
        case 'motor':
          return engine.setMotor(cmd.permille);
        case 'noise':
          return engine.noise();
        case 'all-off':
          engine.stopForExit(); // whoever holds it: the process is going
          if (exitAck) {
            Atomics.add(exitAck, 0, 1);
            Atomics.notify(exitAck, 0);
          }
          return 0;
        case 'sim': {
          const sim = hal.sim;
          if (!sim) throw new CodedError('not-simulated');
          if (cmd.loadG !== undefined) sim.world.placedG = cmd.loadG;
          if (cmd.empty) sim.world.empty();
          if (cmd.faults) sim.faults = { ...sim.faults, ...cmd.faults };
          if (cmd.flowScale !== undefined) sim.world.flowScale = cmd.flowScale;
          if (cmd.jammed !== undefined) sim.world.jammed = cmd.jammed;
          return { placedG: sim.world.placedG, massG: sim.world.mass };
        }
      }
      return undefined;
    },
    async close() {
      clearInterval(noiseTimer);
      if (instances.get(init.scaleId) === inst) instances.delete(init.scaleId);
      // consumers still attached stop first (their motor hold is released)
      for (const c of [...inst.consumers]) await Promise.resolve(c.close()).catch(() => undefined);
      inst.consumers.clear();
      engine.close();
    },
  };
}

async function attachConsumer(a: ConsumerAttach, ctx: InstanceContext<unknown>): Promise<InstanceHandler<unknown>> {
  const inst = await instanceOf(a.scaleId, 5000);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require(a.module) as ConsumerModule;
  const host: ConsumerHost = {
    clock: inst.hal.clock,
    periodUs: inst.periodUs,
    subscribe: (fn) => inst.engine.addListener(fn),
    holdMotor: () => inst.engine.holdMotor(),
    emit: (ev) => ctx.emit(ev),
  };
  const c = mod.createConsumer(host, a.init);
  inst.consumers.add(c);
  return {
    onCommand: (cmd) => c.onCommand(cmd),
    close: () => {
      if (inst.consumers.delete(c)) return c.close();
      return undefined;
    },
  };
}

serveInstances<ScaleInit | ConsumerAttach, unknown, unknown>((init, ctx) =>
  init.kind === 'consumer' ? attachConsumer(init, ctx) : (attachScale(init, ctx as InstanceContext<ScaleEvent>) as InstanceHandler<unknown>),
);
