// rt-journey-egress: appends each msg.payload (an object) as one JSON line to
// a file. The flow engine only serialises the line and hands it over; a shared
// worker thread does all file I/O (batched: flush on count or timer, fsync
// policy, daily rotation by path pattern). A message's done() is called when
// its line is on disk, so Complete nodes and close/redeploy see real writes.
//
// Close (redeploy, stop, SIGTERM) loses nothing the flow sent. Node-RED 4.1
// routes a message when it is sent (Flow.send resolves the destination node
// object) and delivers it on a later setImmediate (asyncMessageDelivery), so
// journeys sent before our close began can reach input() after it began; and
// upstream nodes being stopped at the same time may still emit. Node-RED keeps
// our input listener until our close done() (Node.close removes it right
// after), so close keeps accepting: it makes the worker write at once, and
// finishes only when every accepted line is on disk and no input has arrived
// for a quiet period (rtEdgeEgressCloseQuietMs, 100 ms, counted from the later
// of close start and the last input), bounded (rtEdgeEgressCloseDrainMs, 3 s)
// well under Node-RED's 15 s close timeout. Nothing can reach input() after
// done(): Node-RED has removed the listener by then.
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

import { coreText } from '../shared/i18n';
import { fromWireError } from '../shared/protocol';
import type { DoneFn, Node, NodeAPI, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { SharedMetrics } from '../shared/shared-metrics';
import { RateLimitedWarning, ThrottledStatus } from '../shared/status';
import { clampInt } from '../shared/migrate';
import { WorkerLease } from '../shared/worker-host';
import { type BrokerNode, clientSettings } from '../rt-mqtt-broker/broker-config';
import { type EgressConfig, type EgressDef, readConfig } from './egress-config';
import { encodeLine, Ledger } from './egress-core';
import { EGRESS_METRICS, type EgressCmd, type EgressEvent, type EgressInit } from './egress-protocol';
import { EgressWriter, type TornReport } from './egress-writer';

const TYPE = 'rt-journey-egress';
/** Whole close budget (drain + worker close), under Node-RED's 15 s nodeCloseTimeout. */
const CLOSE_BUDGET_MS = 13_000;
/** The worker's own flush-retry deadline at close, and how long close waits for it. */
const WORKER_CLOSE_MS = 9_000;
const WORKER_CLOSE_WAIT_MS = 9_500;
const mono = (): number => performance.now();

interface EgressNode extends Node {
  _lease?: WorkerLease<EgressEvent, EgressCmd>;
  /** The MQTT outbox counters (tests). */
  _mqttCounts?: () => { published: number; acked: number; dropped: number; outbox: number; connected: number };
}

/** The MQTT outbox file of a node: beside its journey files, hidden, one per node. */
function outboxFile(pattern: string, id: string): string {
  let dir = dirname(pattern);
  while (dir.includes('%')) dir = dirname(dir);
  return join(dir, `.rt-egress-${id.replace(/[^A-Za-z0-9_-]/g, '_')}.outbox`);
}

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const fam = {
    lines: metrics.readerFamily('rtedge_egress_lines_total', 'Journey lines written to disk', 'counter'),
    batches: metrics.readerFamily('rtedge_egress_batches_total', 'Flushes (write calls) performed', 'counter'),
    bytes: metrics.readerFamily('rtedge_egress_bytes_total', 'Bytes appended to journey files', 'counter'),
    writeErrors: metrics.readerFamily('rtedge_egress_write_errors_total', 'Failed write attempts (retried)', 'counter'),
    dropped: metrics.readerFamily('rtedge_egress_dropped_total', 'Journeys refused because the queue was full', 'counter'),
    badInput: metrics.readerFamily('rtedge_egress_bad_input_total', 'Messages rejected as bad input', 'counter'),
    depth: metrics.readerFamily('rtedge_egress_queue_depth', 'Journeys accepted and not yet on disk', 'gauge'),
    torn: metrics.readerFamily('rtedge_egress_torn_tails_total', 'Torn last lines (no newline, e.g. after a crash) moved out of journey files before appending', 'counter'),
    flush: metrics.sharedHistogramFamily('rtedge_egress_flush_seconds', 'Time to write (and fsync) one batch'),
    mqttPublished: metrics.readerFamily('rtedge_egress_mqtt_published_total', 'Batches handed to the MQTT client (QoS 1; resends after a reconnection included)', 'counter'),
    mqttAcked: metrics.readerFamily('rtedge_egress_mqtt_acked_total', 'Batches the broker acknowledged (PUBACK)', 'counter'),
    mqttDropped: metrics.readerFamily('rtedge_egress_mqtt_outbox_dropped_total', 'Batches not queued for MQTT because the outbox was full (they are in the journey file)', 'counter'),
    mqttOutbox: metrics.readerFamily('rtedge_egress_mqtt_outbox_depth', 'Batches in the MQTT outbox, not yet acknowledged', 'gauge'),
    mqttConnected: metrics.readerFamily('rtedge_egress_mqtt_connected', '1 while the MQTT outbox is connected to its broker', 'gauge'),
  };
  const now: () => number = typeof RED.settings.rtEdgeClock === 'function' ? (RED.settings.rtEdgeClock as () => number) : Date.now;
  const baseDir =
    (typeof RED.settings.fileWorkingDirectory === 'string' && RED.settings.fileWorkingDirectory) ||
    RED.settings.userDir ||
    process.cwd();
  const testHooks = RED.settings.rtEdgeTestHooks === true;
  const closeQuietMs = clampInt(RED.settings.rtEdgeEgressCloseQuietMs, 0, 2000, 100);
  const closeDrainMs = clampInt(RED.settings.rtEdgeEgressCloseDrainMs, 0, 3000, 3000);

  function JourneyEgressNode(this: EgressNode, def: EgressDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readConfig(def, baseDir);
    const status = new ThrottledStatus(node);
    const labels = { node: node.id };
    const shared = SharedMetrics.create(EGRESS_METRICS);
    const ledger = new Ledger<DoneFn>(cfg.queueLimit);
    const dropWarn = new RateLimitedWarning((t) => node.warn(t));
    let dropped = 0;
    let badInput = 0;
    let written = 0;
    let accepted = 0;
    let inError = false;
    let closing = false;
    let closed = false;
    let closeStartedAt = 0;
    let lastInputAt = -Infinity;
    let lateInput = 0;
    let postScheduled: NodeJS.Immediate | null = null;

    fam.lines.attach(labels, () => shared.counter('lines'));
    fam.batches.attach(labels, () => shared.counter('batches'));
    fam.bytes.attach(labels, () => shared.counter('bytes'));
    fam.writeErrors.attach(labels, () => shared.counter('write_errors'));
    fam.dropped.attach(labels, () => dropped);
    fam.badInput.attach(labels, () => badInput);
    fam.depth.attach(labels, () => ledger.depth);
    fam.torn.attach(labels, () => shared.counter('torn_tails'));
    fam.flush.attach(labels, shared.histogram('flush'));
    const mqttBroker = (cfg.mqttBroker ? RED.nodes.getNode(cfg.mqttBroker) : null) as BrokerNode | null;
    // Exported for every egress node (0 without an MQTT broker), so the families always have their series.
    fam.mqttPublished.attach(labels, () => shared.counter('mqtt_published'));
    fam.mqttAcked.attach(labels, () => shared.counter('mqtt_acked'));
    fam.mqttDropped.attach(labels, () => shared.counter('mqtt_dropped'));
    fam.mqttOutbox.attach(labels, () => shared.gauge('mqtt_outbox'));
    fam.mqttConnected.attach(labels, () => shared.gauge('mqtt_connected'));
    node._mqttCounts = () => ({
      published: shared.counter('mqtt_published'),
      acked: shared.counter('mqtt_acked'),
      dropped: shared.counter('mqtt_dropped'),
      outbox: shared.gauge('mqtt_outbox'),
      connected: shared.gauge('mqtt_connected'),
    });

    const showOk = (): void => {
      if (inError) return;
      const depth = ledger.depth;
      if (depth >= Math.max(100, cfg.flushCount * 10)) status.set('depth', RED._(`${TYPE}.status.queued`, { n: depth }));
      else status.set('ok', RED._(`${TYPE}.status.written`, { n: written }));
    };

    let lease: WorkerLease<EgressEvent, EgressCmd> | null = null;

    const post = (): void => {
      postScheduled = null;
      if (!lease || lease.state !== 'ready') return;
      const batch = ledger.takeUnposted();
      if (batch && !lease.post({ t: 'append', seq0: batch.seq0, lines: batch.lines, ts: batch.ts })) ledger.rewind();
    };

    const onEvent = (ev: EgressEvent): void => {
      switch (ev.t) {
        case 'flushed': {
          const dones = ledger.ack(ev.upTo);
          written += ev.lines;
          for (const d of dones) d();
          if (cfg.report) {
            node.send({
              topic: 'flush',
              payload: { count: ev.lines, bytes: ev.bytes, file: ev.file, flush_ms: ev.latencyUs / 1000, queued: ledger.depth },
            });
          }
          showOk();
          break;
        }
        case 'error': {
          const err = fromWireError(ev.error) as NodeJS.ErrnoException;
          if (!inError) {
            // Once per outage: a Catch node gets it, the log gets one line.
            inError = true;
            const why = t.errorText(err);
            const text = RED._(`${TYPE}.errors.write`, { file: ev.file, error: why });
            node.error(text, { topic: 'write-error', payload: { file: ev.file, code: err.code, error: why, pending: ev.pending, retry_ms: ev.retryInMs } });
          }
          status.immediate('error', RED._(`${TYPE}.status.writeError`, { code: err.code ?? 'error' }));
          break;
        }
        case 'recovered':
          inError = false;
          node.log(RED._(`${TYPE}.errors.recovered`, { file: ev.file }));
          showOk();
          break;
        case 'torn':
          node.warn(RED._(`${TYPE}.errors.${ev.how === 'moved' ? 'tornTail' : 'tornTailEnded'}`, { file: ev.file, bytes: ev.bytes, offset: ev.offset, to: ev.to }));
          break;
        case 'lost':
          // Reported by close: handled there with the ledger.
          break;
        case 'fatal':
          node.error(RED._(`${TYPE}.errors.worker`, { error: t.errorText(fromWireError(ev.error)) }));
          break;
        case 'mqtt':
          // One warning per outage; the outbox keeps the batches meanwhile.
          if (ev.state === 'down') node.warn(RED._(`${TYPE}.errors.mqttDown`, { url: mqttBroker?.config.url ?? '', error: ev.error ?? '' }));
          else node.log(RED._(`${TYPE}.errors.mqttUp`, { url: mqttBroker?.config.url ?? '' }));
          break;
      }
    };

    if (cfg.patternError || cfg.problems.length > 0) {
      if (cfg.patternError) node.error(RED._(`${TYPE}.errors.badPath`, { error: t.text(cfg.patternError) }));
      if (cfg.problems.length > 0) node.error(RED._(`${TYPE}.errors.badConfig`, { problems: cfg.problems.map(t.text).join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    } else {
      const init: EgressInit = {
        pattern: cfg.pattern,
        count: cfg.flushCount,
        intervalMs: cfg.flushMs,
        fsync: cfg.fsync,
        utc: cfg.utc,
        createDir: cfg.createDir,
        retryInitialMs: 100,
        retryMaxMs: 5000,
        closeTimeoutMs: WORKER_CLOSE_MS,
        metrics: shared.sab,
        testHooks,
        mqtt:
          mqttBroker && mqttBroker.config.problems.length === 0
            ? {
                settings: clientSettings(mqttBroker.config, mqttBroker.credentials, `-egress-${node.id}`, () => randomBytes(4).toString('hex')),
                topic: cfg.mqttTopic,
                file: outboxFile(cfg.pattern, node.id),
                limit: cfg.outboxLimit,
              }
            : null,
      };
      lease = new WorkerLease<EgressEvent, EgressCmd>({
        script: join(__dirname, 'egress.worker.js'),
        key: TYPE,
        init,
        onEvent,
        onReady: () => {
          if (!inError) showOk();
          // A worker (re)started while closing must write at once too.
          if (closing) lease!.post({ t: 'drain' });
          post();
        },
        onRestart: () => {
          // The new worker has nothing: hand it every line not yet acknowledged, in order.
          ledger.rewind();
          post();
        },
        onError: (err) => {
          node.error(RED._(`${TYPE}.errors.worker`, { error: t.errorText(err) }));
          status.immediate('error', RED._(`${TYPE}.status.restarting`));
        },
      });
      node._lease = lease;
      lease.start();
      status.set('ok', RED._(`${TYPE}.status.ready`));
    }

    node.on('input', (msg: NodeMessage, _send: SendFn, done: DoneFn) => {
      if (!lease) {
        done(new Error(RED._(`${TYPE}.errors.notConfigured`)));
        return;
      }
      if (closed) {
        // Unreachable with Node-RED 4.1 (it removes this listener when close completes); never silent.
        done(new Error(RED._(`${TYPE}.errors.closing`)));
        return;
      }
      lastInputAt = mono();
      let line: string;
      try {
        line = encodeLine(msg.payload);
      } catch (err) {
        badInput++;
        status.immediate('error', RED._(`${TYPE}.status.badInput`));
        done(t.error(err));
        return;
      }
      if (ledger.offer(line, now(), done) === 0) {
        dropped++;
        dropWarn.hit((n) => RED._(`${TYPE}.errors.dropWarn`, { n, limit: cfg.queueLimit }));
        done(new Error(RED._(`${TYPE}.errors.queueFull`, { limit: cfg.queueLimit })));
        return;
      }
      accepted++;
      if (closing) lateInput++;
      if (postScheduled === null) postScheduled = setImmediate(post);
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      closeStartedAt = mono();
      let finished = false;
      let drainTimer: NodeJS.Timeout | null = null;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        closed = true;
        if (drainTimer) clearTimeout(drainTimer);
        drainTimer = null;
        if (postScheduled) clearImmediate(postScheduled);
        postScheduled = null;
        fam.lines.detach(labels);
        fam.batches.detach(labels);
        fam.bytes.detach(labels);
        fam.writeErrors.detach(labels);
        fam.dropped.detach(labels);
        fam.badInput.detach(labels);
        fam.depth.detach(labels);
        fam.torn.detach(labels);
        fam.flush.detach(labels);
        fam.mqttPublished.detach(labels);
        fam.mqttAcked.detach(labels);
        fam.mqttDropped.detach(labels);
        fam.mqttOutbox.detach(labels);
        fam.mqttConnected.detach(labels);
        status.close();
        node.log(RED._(`${TYPE}.errors.closed`, { accepted, written, dropped, late: lateInput }));
        done();
      };
      if (!lease) {
        finish();
        return;
      }
      const l = lease;
      // Phase 1 (drain): keep accepting; the worker writes every batch at once.
      l.post({ t: 'drain' });
      post();
      const stopWorker = (): void => {
        drainTimer = null;
        if (postScheduled) clearImmediate(postScheduled);
        postScheduled = null;
        post();
        // Phase 2: the worker writes what it still holds, fsyncs and detaches.
        const wait = Math.max(1000, Math.min(WORKER_CLOSE_WAIT_MS, CLOSE_BUDGET_MS - (mono() - closeStartedAt)));
        l.close(wait).then(
          (confirmed) => {
            // Left: lines the worker could not write by its deadline, or (rare)
            // journeys that arrived while the worker was detaching, or all
            // unwritten ones if the worker died or hung. Write them from here, once.
            const rest = ledger.drainAll();
            if (rest.lines.length > 0) {
              const err = lastResortWrite(cfg, rest.lines, rest.ts, (r) => onEvent({ t: 'torn', ...r }));
              if (err) {
                const text = RED._(`${TYPE}.errors.lost`, { n: rest.lines.length }) + ': ' + err.message;
                node.error(text);
                for (const d of rest.dones) d(err);
              } else {
                written += rest.lines.length;
                if (!confirmed) node.warn(RED._(`${TYPE}.errors.lastResort`, { n: rest.lines.length }));
                for (const d of rest.dones) d();
              }
            }
            finish();
          },
          () => finish(),
        );
      };
      const check = (): void => {
        const t = mono();
        const quietFor = t - Math.max(lastInputAt, closeStartedAt);
        const drained = ledger.depth === 0 || inError || l.state !== 'ready';
        if ((quietFor >= closeQuietMs && drained) || t - closeStartedAt >= closeDrainMs) {
          stopWorker();
          return;
        }
        const untilQuiet = Math.max(1, closeQuietMs - quietFor);
        drainTimer = setTimeout(check, drained ? untilQuiet : Math.min(untilQuiet, 5));
      };
      drainTimer = setTimeout(check, Math.min(5, closeQuietMs));
    });
  }

  RED.nodes.registerType(TYPE, JourneyEgressNode as never);
};

/**
 * Synchronous append from the main thread, used only at close for what the
 * worker did not write (it died, hung, or the journeys arrived while it was
 * detaching). The same EgressWriter as in the worker, so a torn tail left by a
 * worker that died mid-write is set apart here too, never glued onto.
 */
function lastResortWrite(cfg: EgressConfig, lines: string[], ts: number[], onTorn: (r: TornReport) => void): Error | null {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('node:fs') as typeof import('node:fs');
  let err: Error | null = null;
  const w = new EgressWriter(
    { pattern: cfg.pattern, count: lines.length + 1, intervalMs: 3_600_000, fsync: 'batch', utc: cfg.utc, createDir: cfg.createDir, retryInitialMs: 0, retryMaxMs: 0 },
    fs,
    { now: Date.now, hrUs: () => Number(process.hrtime.bigint() / 1000n) },
    // No timers: one synchronous attempt.
    { set: () => null, clear: () => undefined },
    { flushed: () => undefined, error: (e) => (err ??= e), recovered: () => undefined, torn: onTorn },
  );
  try {
    w.append(1, lines, ts);
    w.flush(true);
  } catch (e) {
    err ??= e as Error;
  }
  // close() is synchronous when nothing is left to retry (deadline already passed): fsync + close the file.
  void w.close(0, () => Promise.resolve());
  return err;
}
