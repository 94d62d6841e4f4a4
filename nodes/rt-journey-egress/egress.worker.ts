// Worker entry of rt-journey-egress: all file I/O for every egress instance in
// the process (one shared thread). It never waits for the main thread.
import * as fs from 'node:fs';

import { toWireError } from '../shared/protocol';
import { SharedMetrics } from '../shared/shared-metrics';
import { serveInstances } from '../shared/worker-runtime';
import { EGRESS_METRICS, type EgressCmd, type EgressEvent, type EgressInit } from './egress-protocol';
import { EgressWriter } from './egress-writer';

const hrUs = (): number => Number(process.hrtime.bigint() / 1000n);

serveInstances<EgressInit, EgressCmd, EgressEvent>((init, ctx) => {
  const metrics = SharedMetrics.attach(EGRESS_METRICS, init.metrics);
  const flushHist = metrics.histogram('flush');
  const writer = new EgressWriter(
    {
      pattern: init.pattern,
      count: init.count,
      intervalMs: init.intervalMs,
      fsync: init.fsync,
      utc: init.utc,
      createDir: init.createDir,
      retryInitialMs: init.retryInitialMs,
      retryMaxMs: init.retryMaxMs,
    },
    fs,
    { now: Date.now, hrUs },
    {
      set: (fn, ms) => {
        const t = setTimeout(fn, ms);
        return t;
      },
      clear: (h) => clearTimeout(h as NodeJS.Timeout),
    },
    {
      flushed(r) {
        metrics.inc('lines', r.lines);
        metrics.inc('batches');
        metrics.inc('bytes', r.bytes);
        flushHist.observeUs(r.latencyUs);
        ctx.emit({ t: 'flushed', ...r });
      },
      error(err, file, pending, retryInMs) {
        metrics.inc('write_errors');
        ctx.emit({ t: 'error', error: toWireError(err), file, pending, retryInMs });
      },
      recovered(file) {
        ctx.emit({ t: 'recovered', file });
      },
      torn(r) {
        metrics.inc('torn_tails');
        ctx.emit({ t: 'torn', ...r });
      },
    },
  );
  // Set apart a torn tail of the current file now, so it is reported at start
  // rather than at the first journey.
  writer.start();
  return {
    onCommand(cmd) {
      switch (cmd.t) {
        case 'append':
          writer.append(cmd.seq0, cmd.lines, cmd.ts);
          return undefined;
        case 'flush':
          return writer.flush();
        case 'drain':
          writer.drain();
          return undefined;
        case 'crash':
          if (init.testHooks) {
            // Test hook: an uncaught exception outside the message handler kills the worker.
            setImmediate(() => {
              throw new Error('egress worker crash requested by test hook');
            });
          }
          return undefined;
      }
    },
    async close() {
      const deadline = Date.now() + init.closeTimeoutMs;
      const left = await writer.close(deadline, (ms) => new Promise((r) => setTimeout(r, ms)));
      if (left > 0) {
        const p = writer.pendingLines();
        ctx.emit({ t: 'lost', count: left, firstSeq: p.seq0 });
      }
    },
  };
});
