// The HAL worker: one thread per process owns every scale's pins (pigpio is
// not context-aware and allows one user per Pi). Each rt-scale config node
// attaches one instance: its HAL, its sampling engine, its ring.
import { CodedError } from '../shared/coded';
import { SharedMetrics } from '../shared/shared-metrics';
import { SpscRing } from '../shared/spsc-ring';
import { raiseThreadPriority } from '../shared/thread-priority';
import { serveInstances } from '../shared/worker-runtime';
import { DoseRunner } from '../rt-dosing/dose-runner';
import { openHal } from './hal';
import { periodUs } from './hx711-protocol';
import { ScaleEngine } from './scale-engine';
import { SCALE_METRICS, type ScaleCmd, type ScaleEvent, type ScaleInit } from './scale-protocol';

serveInstances<ScaleInit, ScaleCmd, ScaleEvent>((init, ctx) => {
  const nice = raiseThreadPriority(init.nice);
  if (nice !== null) ctx.emit({ t: 'priority', nice });
  const hal = openHal(init.hal); // throws a CodedError (pigpio missing...): attach fails, the node shows its text
  const metrics = SharedMetrics.attach(SCALE_METRICS, init.metrics);
  const engine = new ScaleEngine(
    hal,
    { gain: init.gain, cal: init.cal, sampler: init.sampler, calSamples: init.calSamples, periodUs: periodUs(init.hal.sps) },
    SpscRing.attach(init.ring),
    metrics,
    (ev) => ctx.emit(ev),
  );
  engine.start();
  let runner: DoseRunner | null = null;
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
          hal.setMotor(cmd.permille);
          return cmd.permille;
        case 'noise':
          return engine.noise();
        case 'dose-config':
          if (runner?.running) throw new CodedError('dose-running');
          runner = new DoseRunner(
            engine,
            hal,
            cmd.params,
            cmd.tauUs,
            { progress: (p) => ctx.emit({ t: 'dose-progress', p }), done: (rec) => ctx.emit({ t: 'dose-done', rec }) },
            metrics.histogram('step'),
            cmd.progressEveryUs > 0 ? cmd.progressEveryUs : Number.MAX_SAFE_INTEGER,
          );
          runner.ctl.setSamplePeriod(periodUs(init.hal.sps));
          return runner.ctl.tau;
        case 'dose':
          if (!runner) throw new CodedError('no-dosing');
          runner.start(cmd.targetCg, cmd.recipe);
          return true;
        case 'dose-stop':
          runner?.abort(cmd.reason);
          hal.setMotor(0);
          return true;
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
    close() {
      clearInterval(noiseTimer);
      runner?.close();
      engine.close();
    },
  };
});
