// Worker entry of rt-journey-egress: all file I/O for every egress instance in
// the process (one shared thread). It never waits for the main thread.
import * as fs from 'node:fs';

import { toWireError } from '../shared/protocol';
import { SharedMetrics } from '../shared/shared-metrics';
import { serveInstances } from '../shared/worker-runtime';
import { EGRESS_METRICS, type EgressCmd, type EgressEvent, type EgressInit } from './egress-protocol';
import { MqttOutbox } from './egress-outbox';
import { EgressWriter } from './egress-writer';

const hrUs = (): number => Number(process.hrtime.bigint() / 1000n);

serveInstances<EgressInit, EgressCmd, EgressEvent>((init, ctx) => {
  const metrics = SharedMetrics.attach(EGRESS_METRICS, init.metrics);
  const flushHist = metrics.histogram('flush');
  // The MQTT outbox (optional): the lines handed to the writer, in order, until a flush reports them written.
  const toPublish: string[] = [];
  let mqttDown = false;
  const outbox = init.mqtt
    ? new MqttOutbox(
        { file: init.mqtt.file, limit: init.mqtt.limit, topic: init.mqtt.topic, mqtt: init.mqtt.settings, window: 64 },
        {
          published: () => metrics.inc('mqtt_published'),
          acked: () => metrics.inc('mqtt_acked'),
          dropped: () => metrics.inc('mqtt_dropped'),
          depth: (n) => metrics.setGauge('mqtt_outbox', n),
          connected: (up, error) => {
            metrics.setGauge('mqtt_connected', up ? 1 : 0);
            if (!up && !mqttDown) {
              mqttDown = true;
              ctx.emit({ t: 'mqtt', state: 'down', error });
            } else if (up && mqttDown) {
              mqttDown = false;
              ctx.emit({ t: 'mqtt', state: 'connected' });
            }
          },
        },
      )
    : null;
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
        if (outbox) {
          const batch = toPublish.splice(0, r.lines);
          try {
            outbox.add(batch.join('\n') + '\n');
          } catch (err) {
            metrics.inc('mqtt_dropped');
            ctx.emit({ t: 'mqtt', state: 'down', error: (err as Error).message });
          }
        }
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
  outbox?.start();
  return {
    onCommand(cmd) {
      switch (cmd.t) {
        case 'append':
          if (outbox) for (const l of cmd.lines) toPublish.push(l);
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
      // What the broker has not acknowledged stays in the outbox file for the next start.
      if (outbox) await outbox.close(Math.max(0, Math.min(1000, deadline - Date.now())));
    },
  };
});
