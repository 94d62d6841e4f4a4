// The rt-dosing consumer module, loaded into the scale's HAL worker by its
// path (scale-consumer.ts): one dose runner per rt-dosing node, stepping on the
// scale's samples in that thread. Imports no node-red and no worker_threads.
import { CodedError } from '../shared/coded';
import { SharedMetrics } from '../shared/shared-metrics';
import type { ConsumerHost, ScaleConsumer } from '../rt-scale/scale-consumer';
import { DoseRunner } from './dose-runner';
import { DOSING_METRICS, type DosingCmd, type DosingEvent, type DosingInit } from './dosing-protocol';

export function createConsumer(host: ConsumerHost, raw: unknown): ScaleConsumer {
  const init = raw as DosingInit;
  const metrics = SharedMetrics.attach(DOSING_METRICS, init.metrics);
  const emit = (ev: DosingEvent): void => host.emit(ev);
  const runner = new DoseRunner(
    host,
    init.params,
    init.prior ?? null,
    { progress: (p) => emit({ t: 'progress', p }), done: (rec) => emit({ t: 'done', rec }) },
    metrics.histogram('step'),
    init.progressEveryUs > 0 ? init.progressEveryUs : Number.MAX_SAFE_INTEGER,
  );
  return {
    onCommand(c: unknown) {
      const cmd = c as DosingCmd;
      switch (cmd.t) {
        case 'dose':
          runner.start(cmd.targetCg, cmd.recipe);
          return runner.ctl.tau;
        case 'stop':
          runner.abort(cmd.reason);
          return true;
        case 'forget':
          runner.forget();
          return true;
        case 'crash':
          if (init.testHooks) {
            // Test hook: an uncaught exception outside the message handler kills the HAL worker mid-dose.
            setImmediate(() => {
              throw new Error('HAL worker crash requested by test hook');
            });
          }
          return undefined;
      }
      throw new CodedError('unknown-command', { t: String((cmd as { t?: unknown }).t) });
    },
    close() {
      runner.close();
    },
  };
}
