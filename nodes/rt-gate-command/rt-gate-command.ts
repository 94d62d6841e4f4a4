// rt-gate-command: enqueues a gate command and returns at once; a worker
// thread that owns the TCP link to the gate controller sends it, matches the
// acknowledgement and reports the result. A full queue drops the newest
// command, counts it, warns at most once a second and sends a `dropped` result.
import { join } from 'node:path';

import { coreText } from '../shared/i18n';
import type { Coded } from '../shared/coded';
import { readLimited } from '../shared/limits';
import { clampInt } from '../shared/migrate';
import type { DoneFn, Node, NodeAPI, NodeDef, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { SharedMetrics } from '../shared/shared-metrics';
import { RateLimitedWarning, ThrottledStatus } from '../shared/status';
import { nowUs } from '../shared/time';
import { WorkerLease } from '../shared/worker-host';
import type { EndpointNode } from '../rt-gate-endpoint/endpoint-config';
import { checkGate, renderCommand } from './gate-core';
import { GATE_METRICS, type GateCmd, type GateEvent, type GateInit } from './gate-protocol';

const TYPE = 'rt-gate-command';

interface CommandDef extends NodeDef {
  version?: number;
  endpoint?: string;
  queueLimit?: number | string;
}

interface Waiting {
  msg: NodeMessage;
  send: SendFn;
  done: DoneFn;
  gate: string;
  trackId: unknown;
  /** handed to the worker (false: waiting for the worker to be ready) */
  posted: boolean;
}

interface GateNode extends Node {
  _lease?: WorkerLease<GateEvent, GateCmd>;
}

const ms = (us: number): number => Math.round(us) / 1000;

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const fam = {
    results: metrics.readerFamily('rtedge_gate_commands_total', 'Gate commands by result (label result)', 'counter'),
    dropped: metrics.readerFamily('rtedge_gate_commands_dropped_total', 'Gate commands dropped because the queue was full', 'counter'),
    depth: metrics.readerFamily('rtedge_gate_queue_depth', 'Gate commands queued or in flight', 'gauge'),
    connected: metrics.readerFamily('rtedge_gate_connected', '1 while the link to the gate controller is up', 'gauge'),
    queueDelay: metrics.sharedHistogramFamily('rtedge_gate_queue_delay_seconds', 'Time from enqueue to the command going on the wire'),
    sendLatency: metrics.sharedHistogramFamily('rtedge_gate_send_latency_seconds', 'Time from send to acknowledgement'),
    queueDelayP99: metrics.readerFamily('rtedge_gate_queue_delay_p99_seconds', 'Queue delay p99 since start (fine histogram, within 6.25 %)', 'gauge'),
    queueDelayMax: metrics.readerFamily('rtedge_gate_queue_delay_max_seconds', 'Largest queue delay since start', 'gauge'),
    sendLatencyP99: metrics.readerFamily('rtedge_gate_send_latency_p99_seconds', 'Send latency p99 since start (fine histogram, within 6.25 %)', 'gauge'),
    sendLatencyMax: metrics.readerFamily('rtedge_gate_send_latency_max_seconds', 'Largest send latency since start', 'gauge'),
  };

  function GateCommandNode(this: GateNode, def: CommandDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const limitProblems: Coded[] = [];
    const queueLimit = Math.round(readLimited('rt-gate-command', 'queueLimit', def.queueLimit, 64, limitProblems));
    const endpoint = (def.endpoint ? RED.nodes.getNode(def.endpoint) : null) as EndpointNode | null;
    const labels = { node: node.id };
    const shared = SharedMetrics.create(GATE_METRICS);
    const waiting = new Map<number, Waiting>();
    const dropWarn = new RateLimitedWarning((t) => node.warn(t));
    let dropped = 0;
    let nextId = 1;
    let link: 'connecting' | 'connected' | 'down' = 'connecting';
    /** The link went down and has not been up since (its warning was given). */
    let outage = false;
    /** Commands accepted while the worker was starting or restarting, in order. */
    const unsent: GateCmd[] = [];
    const flushUnsent = (): void => {
      while (lease && unsent.length > 0 && lease.state === 'ready') {
        const c = unsent[0];
        if (!lease.post(c)) break;
        unsent.shift();
        const w = waiting.get(c.id);
        if (w) w.posted = true;
      }
    };

    for (const r of ['ok', 'timeout', 'error'] as const) fam.results.attach({ ...labels, result: r }, () => shared.counter(r));
    fam.results.attach({ ...labels, result: 'dropped' }, () => dropped);
    fam.dropped.attach(labels, () => dropped);
    fam.depth.attach(labels, () => waiting.size);
    fam.connected.attach(labels, () => shared.gauge('connected'));
    fam.queueDelay.attach(labels, shared.histogram('queue_delay'));
    fam.sendLatency.attach(labels, shared.histogram('send_latency'));
    fam.queueDelayP99.attach(labels, () => shared.histogram('queue_delay').summaryMs().p99 / 1000);
    fam.queueDelayMax.attach(labels, () => shared.histogram('queue_delay').summaryMs().max / 1000);
    fam.sendLatencyP99.attach(labels, () => shared.histogram('send_latency').summaryMs().p99 / 1000);
    fam.sendLatencyMax.attach(labels, () => shared.histogram('send_latency').summaryMs().max / 1000);

    const show = (): void => {
      if (link === 'connected') {
        if (waiting.size > 0) status.set('depth', RED._(`${TYPE}.status.queued`, { n: waiting.size }));
        else status.set('ok', RED._(`${TYPE}.status.connected`));
      } else if (link === 'connecting') status.set('connecting', RED._(`${TYPE}.status.connecting`));
      else status.set('error', RED._(`${TYPE}.status.down`));
    };

    let lease: WorkerLease<GateEvent, GateCmd> | null = null;
    const problems = [...(!endpoint ? [RED._(`${TYPE}.errors.noEndpoint`)] : endpoint.config.problems.map(t.text)), ...limitProblems.map(t.text)];
    if (problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: problems.join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    } else {
      const c = endpoint!.config;
      const init: GateInit = {
        host: c.host,
        port: c.port,
        ack: c.ack,
        timeoutMs: c.timeoutMs,
        maxInflight: c.maxInflight,
        backoffMinMs: c.backoffMinMs,
        backoffMaxMs: c.backoffMaxMs,
        keepAlive: c.keepAlive,
        nice: clampInt(RED.settings.rtEdgeGateNice, -20, 0, -10),
        metrics: shared.sab,
        closeGraceMs: 1000,
      };
      lease = new WorkerLease<GateEvent, GateCmd>({
        script: join(__dirname, 'gate.worker.js'),
        key: `${TYPE}:${endpoint!.id}`,
        init,
        onEvent: (ev) => {
          if (ev.t === 'priority') {
            node.log(RED._(`${TYPE}.priority`, { nice: ev.nice }));
            return;
          }
          if (ev.t === 'link') {
            // One warning per outage (not one per reconnect attempt), and a log line when it ends.
            if (ev.state === 'down' && !outage) {
              outage = true;
              node.warn(RED._(`${TYPE}.errors.linkDown`, { host: c.host, port: c.port, error: ev.error ? t.text(ev.error) : '' }));
            } else if (ev.state === 'connected' && outage) {
              outage = false;
              node.log(RED._(`${TYPE}.linkUp`, { host: c.host, port: c.port }));
            }
            link = ev.state;
            show();
            return;
          }
          const w = waiting.get(ev.id);
          if (!w) return;
          waiting.delete(ev.id);
          w.msg.payload = {
            gate: w.gate,
            track_id: w.trackId,
            result: ev.result,
            queue_delay_ms: ms(ev.queueDelayUs),
            send_latency_ms: ms(ev.sendLatencyUs),
            total_ms: ms(ev.totalUs),
            ...(ev.reason ? { reason: t.text(ev.reason), reason_code: ev.reason.code } : {}),
            ...(ev.reply !== undefined ? { reply: ev.reply } : {}),
          };
          w.send(w.msg);
          w.done();
          show();
        },
        onError: (err) => {
          node.error(RED._(`${TYPE}.errors.worker`, { error: t.errorText(err) }));
          status.immediate('error', RED._(`${TYPE}.status.restarting`));
        },
        onReady: () => flushUnsent(),
        onRestart: () => {
          // The dead worker's queue is gone: report every command it held, never silently.
          for (const [id, w] of waiting) {
            if (!w.posted) continue;
            waiting.delete(id);
            w.msg.payload = { gate: w.gate, track_id: w.trackId, result: 'error', reason: RED._(`${TYPE}.reasons.workerRestarted`), reason_code: 'worker-restarted', queue_delay_ms: 0, send_latency_ms: 0, total_ms: 0 };
            w.send(w.msg);
            w.done();
          }
        },
      });
      node._lease = lease;
      lease.start();
      show();
    }

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      if (!lease || !endpoint) {
        done(new Error(RED._(`${TYPE}.errors.notConfigured`)));
        return;
      }
      const p = msg.payload;
      const fields: Record<string, unknown> = typeof p === 'object' && p !== null && !Array.isArray(p) ? { ...(p as Record<string, unknown>) } : {};
      if (fields.gate === undefined && msg.gate !== undefined) fields.gate = msg.gate;
      if (fields.track_id === undefined && msg.track_id !== undefined) fields.track_id = msg.track_id;
      let gate: string;
      let text: string;
      try {
        gate = checkGate(fields.gate);
        fields.gate = gate;
        text = renderCommand(endpoint.config.template, fields);
      } catch (err) {
        status.immediate('error', RED._(`${TYPE}.status.badInput`));
        done(t.error(err));
        return;
      }
      if (waiting.size >= queueLimit) {
        dropped++;
        dropWarn.hit((n) => RED._(`${TYPE}.errors.dropWarn`, { n, limit: queueLimit }));
        msg.payload = { gate, track_id: fields.track_id, result: 'dropped', queue_delay_ms: 0, send_latency_ms: 0, total_ms: 0 };
        send(msg);
        done();
        return;
      }
      const id = nextId++;
      const cmd: GateCmd = { t: 'send', id, gate, text, enqUs: nowUs() };
      const posted = unsent.length === 0 && lease.post(cmd);
      waiting.set(id, { msg, send, done, gate, trackId: fields.track_id, posted });
      if (!posted) unsent.push(cmd); // sent when the worker is ready; the timeout still runs from now
      show();
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      const finish = (): void => {
        for (const key of ['ok', 'timeout', 'error', 'dropped']) fam.results.detach({ ...labels, result: key });
        fam.dropped.detach(labels);
        fam.depth.detach(labels);
        fam.connected.detach(labels);
        fam.queueDelay.detach(labels);
        fam.sendLatency.detach(labels);
        fam.queueDelayP99.detach(labels);
        fam.queueDelayMax.detach(labels);
        fam.sendLatencyP99.detach(labels);
        fam.sendLatencyMax.detach(labels);
        status.close();
        for (const w of waiting.values()) w.done();
        waiting.clear();
        done();
      };
      if (!lease) finish();
      else lease.close(3000).then(finish, finish);
    });
  }

  RED.nodes.registerType(TYPE, GateCommandNode as never);
};
