// Worker entry of rt-gate-command: owns the TCP links to the gate controllers
// (one per node instance; node instances on one endpoint share this thread).
import { SharedMetrics } from '../shared/shared-metrics';
import { raiseThreadPriority } from '../shared/thread-priority';
import { nowUs } from '../shared/time';
import { serveInstances } from '../shared/worker-runtime';
import { GateLink } from './gate-link';
import { GATE_METRICS, type GateCmd, type GateEvent, type GateInit } from './gate-protocol';

serveInstances<GateInit, GateCmd, GateEvent>((init, ctx) => {
  // The link must get the CPU as soon as a command is queued, even while the
  // flow engine's thread is busy.
  const nice = raiseThreadPriority(init.nice);
  if (nice !== null) ctx.emit({ t: 'priority', nice });
  const m = SharedMetrics.attach(GATE_METRICS, init.metrics);
  const qd = m.histogram('queue_delay');
  const sl = m.histogram('send_latency');
  const link = new GateLink(init, {
    emit: (ev) => ctx.emit(ev),
    nowUs,
    onSent: (us) => {
      m.inc('sent');
      qd.observeUs(us);
    },
    onDone: (result, us) => {
      m.inc(result);
      if (result === 'ok') sl.observeUs(us);
    },
    onConnected: (up) => {
      m.setGauge('connected', up ? 1 : 0);
      if (up) m.inc('connects');
    },
  });
  return {
    onCommand(cmd) {
      if (cmd.t === 'send') link.enqueue({ id: cmd.id, gate: cmd.gate, text: cmd.text, enqUs: cmd.enqUs });
      return undefined;
    },
    close: () => link.close(init.closeGraceMs),
  };
});
