// rt-control-plant: a heater + motor controller (simulated HAL) run in a
// worker thread, and the HTTP control API's handler. Wire `http in` nodes to
// it and its first output to an `http response` node. Reads (status, data,
// GPIO state) are answered at once from the latest state the worker published
// in a SharedArrayBuffer: they never wait on the worker. Writes (control,
// GPIO) are validated here (schema, ranges, body size: a refused write is a
// 400/413 naming the field, and nothing is applied) and then applied by the
// worker, which acknowledges. Logging on/off is idempotent; while on, a
// telemetry record goes out on output 2 every `logMs` (to rt-journey-egress).
// Output 3 carries the state for a dashboard every `uiMs`, and the replies to
// requests that came without msg.res (a dashboard's writes), topic `reply`.
//
// A refused request is the client's mistake, answered with its 400: it is
// counted (rtedge_plant_refused_total) and warned about at most once a second
// with the running count, not raised as a node error per request (an API under
// load would flood the log and every Catch node). A message that is not an API
// request at all (unknown operation) is a flow mistake: node.error(err, msg).
import { join } from 'node:path';

import { coreText } from '../shared/i18n';
import { fromWireError } from '../shared/protocol';
import type { DoneFn, Node, NodeAPI, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { RateLimitedWarning, ThrottledStatus } from '../shared/status';
import { WorkerLease } from '../shared/worker-host';
import { readConfig, type PlantDef, START_SETPOINTS } from './plant-config';
import {
  bodySize,
  dataBody,
  GPIO_WRITABLE,
  type LoggingState,
  logRecord,
  opOf,
  type Refusal,
  SnapshotCell,
  statusBody,
  validateControl,
  validateGpio,
} from './plant-core';
import type { BatchResult, PlantCmd, PlantEvent, PlantInit, WriteCmd } from './plant-protocol';

const TYPE = 'rt-control-plant';
const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

interface ReqLike {
  method?: string;
  path?: string;
  route?: { path?: string };
  headers?: Record<string, unknown>;
}

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  // One family per operation group and per cut-out (labelled by node only: a closed label set).
  const fam = {
    reads: metrics.readerFamily('rtedge_plant_reads_total', 'Control API reads answered (status, data, GPIO state)', 'counter'),
    writes: metrics.readerFamily('rtedge_plant_writes_total', 'Control API control writes answered (any status)', 'counter'),
    toggles: metrics.readerFamily('rtedge_plant_log_toggles_total', 'Control API log start/stop requests answered', 'counter'),
    gpioWrites: metrics.readerFamily('rtedge_plant_gpio_writes_total', 'Control API GPIO writes answered (any status)', 'counter'),
    refused: metrics.readerFamily('rtedge_plant_refused_total', 'Control API writes refused (400/413), nothing applied', 'counter'),
    failed: metrics.readerFamily('rtedge_plant_failed_total', 'Control API writes the plant did not acknowledge (503)', 'counter'),
    overTemp: metrics.readerFamily('rtedge_plant_over_temp_trips_total', 'Over-temperature cut-outs of a heater', 'counter'),
    overspeed: metrics.readerFamily('rtedge_plant_overspeed_trips_total', 'Overspeed stops of the motor', 'counter'),
    logged: metrics.readerFamily('rtedge_plant_log_records_total', 'Telemetry records sent to the log output', 'counter'),
  };
  const testHooks = RED.settings.rtEdgeTestHooks === true;

  function ControlPlantNode(this: Node, def: PlantDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readConfig(def);
    const status = new ThrottledStatus(node);
    const cell = SnapshotCell.create();
    const refusedWarn = new RateLimitedWarning((text) => node.warn(text));
    const counts = { requests: new Map<string, number>(), refused: 0, failed: 0 };
    const logging: LoggingState = { on: false, since: null, records: 0 };
    let logTimer: NodeJS.Timeout | null = null;
    let uiTimer: NodeJS.Timeout | null = null;
    let lease: WorkerLease<PlantEvent, PlantCmd> | null = null;
    let closing = false;
    const labels = { node: node.id };
    const group = (op: string): 'reads' | 'writes' | 'toggles' | 'gpioWrites' =>
      op === 'control' ? 'writes' : op === 'gpio-set' ? 'gpioWrites' : op.startsWith('log') ? 'toggles' : 'reads';
    for (const g of ['reads', 'writes', 'toggles', 'gpioWrites'] as const) fam[g].attach(labels, () => counts.requests.get(g) ?? 0);
    fam.refused.attach(labels, () => counts.refused);
    fam.failed.attach(labels, () => counts.failed);
    fam.overTemp.attach(labels, () => cell.read()?.safety.trips.overTemp ?? 0);
    fam.overspeed.attach(labels, () => cell.read()?.safety.trips.overspeed ?? 0);
    fam.logged.attach(labels, () => logging.records);

    const showOk = (): void => {
      const s = cell.read();
      if (!s) return;
      const fault = s.safety.overspeed || s.safety.overTemp.some(Boolean);
      if (fault) status.set('error', RED._(`${TYPE}.status.fault`));
      else status.set('ok', RED._(logging.on ? `${TYPE}.status.logging` : `${TYPE}.status.running`, { rpm: s.rpm }));
    };

    const reply = (msg: NodeMessage, send: SendFn, done: DoneFn, op: string, code: number, body: unknown): void => {
      counts.requests.set(group(op), (counts.requests.get(group(op)) ?? 0) + 1);
      msg.statusCode = code;
      msg.headers = { ...JSON_HEADERS };
      msg.payload = body;
      // An HTTP request's reply goes to the http response node; a dashboard's (no msg.res) to the state output.
      if (msg.res) send([msg, null, null]);
      else {
        msg.topic = 'reply';
        send([null, null, msg]);
      }
      done();
    };
    const refused = (msg: NodeMessage, send: SendFn, done: DoneFn, op: string, r: Refusal): void => {
      counts.refused++;
      refusedWarn.hit((n) => RED._(`${TYPE}.errors.refused`, { n, why: t.text(r.why) }));
      reply(msg, send, done, op, r.status, r.body);
    };
    const unavailable = (msg: NodeMessage, send: SendFn, done: DoneFn, op: string, err: unknown): void => {
      counts.failed++;
      node.error(RED._(`${TYPE}.errors.write`, { error: t.errorText(err) }), msg);
      reply(msg, send, done, op, 503, { error: 'plant-unavailable' });
    };

    // Writes are sent to the worker in batches: every write the flow engine hands this node in one turn of
    // its loop (Node-RED delivers messages from setImmediate, several per turn under load) goes out in one
    // postMessage at the end of that turn (setImmediate), and the worker applies them in order and
    // publishes once. A CPU profile at 700 req/s had the per-write postMessage as this node's largest cost.
    let batch: Array<{ cmd: WriteCmd; resolve: (v: unknown) => void; reject: (e: unknown) => void }> = [];
    let flushing: NodeJS.Immediate | null = null;
    const flush = (): void => {
      flushing = null;
      const b = batch;
      batch = [];
      if (b.length === 0) return;
      if (!lease) {
        for (const w of b) w.reject(new Error(RED._(`${TYPE}.errors.closing`)));
        return;
      }
      if (b.length === 1) {
        lease.request(b[0].cmd, cfg.writeTimeoutMs).then(b[0].resolve, b[0].reject);
        return;
      }
      lease.request<BatchResult[]>({ t: 'batch', cmds: b.map((w) => w.cmd) }, cfg.writeTimeoutMs).then(
        (rs) => b.forEach((w, i) => (rs[i]?.ok ? w.resolve(rs[i].value) : w.reject(rs[i] ? fromWireError(rs[i].error) : new Error(RED._(`${TYPE}.errors.noResult`))))),
        (err) => b.forEach((w) => w.reject(err)),
      );
    };
    const submit = <T>(cmd: WriteCmd): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        batch.push({ cmd, resolve: resolve as (v: unknown) => void, reject });
        flushing ??= setImmediate(flush);
      });

    const setLogging = (on: boolean): boolean => {
      if (logging.on === on) return false;
      logging.on = on;
      if (on) {
        logging.since = Date.now();
        logTimer = setInterval(() => {
          const s = cell.read();
          if (!s) return;
          logging.records++;
          node.send([null, { topic: 'telemetry', payload: logRecord(s) }, null]);
        }, cfg.logMs);
      } else if (logTimer) {
        clearInterval(logTimer);
        logTimer = null;
      }
      lease?.post({ t: 'logging', on });
      // The status shows it at the next UI tick (uiMs): the status is throttled to one update per 500 ms
      // anyway, and its text (an i18n lookup) is then built once per tick, not once per toggle request.
      if (!uiTimer) showOk();
      return true;
    };

    if (cfg.problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: cfg.problems.map(t.text).join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    } else {
      const init: PlantInit = {
        snapshot: cell.sab,
        tickMs: cfg.tickMs,
        safety: cfg.safety,
        initial: START_SETPOINTS,
        backend: 'simulated',
        testHooks,
      };
      lease = new WorkerLease<PlantEvent, PlantCmd>({
        script: join(__dirname, 'plant.worker.js'),
        key: TYPE,
        init,
        onEvent: (ev) => {
          if (ev.t === 'safety') {
            node.warn(RED._(`${TYPE}.errors.${ev.what === 'overspeed' ? 'overspeed' : 'overTemp'}`, { value: Math.round(ev.value) }));
            status.immediate('error', RED._(`${TYPE}.status.fault`));
          } else if (ev.t === 'fatal') {
            const text = RED._(`${TYPE}.errors.worker`, { error: t.errorText(fromWireError(ev.error)) });
            node.error(text, { topic: 'error', payload: { error: text } }); // a message, so Catch nodes see it
          }
        },
        onReady: () => {
          if (logging.on) lease?.post({ t: 'logging', on: true });
          showOk();
        },
        onError: (err) => {
          const text = RED._(`${TYPE}.errors.worker`, { error: t.errorText(err) });
          node.error(text, { topic: 'error', payload: { error: text } });
          status.immediate('error', RED._(`${TYPE}.status.restarting`));
        },
      });
      lease.start();
      status.set('connecting', RED._(`${TYPE}.status.starting`));
      uiTimer = setInterval(() => {
        const s = cell.read();
        if (!s) return;
        node.send([null, null, { topic: 'state', payload: { ...dataBody(s, Date.now()), status: statusBody(s, logging, Date.now()), gpio: s.gpio } }]);
        showOk();
      }, cfg.uiMs);
    }

    // An HTTP request's operation depends only on its method and route (a handful of http in nodes): worked
    // out once per route, not per request (opOf's string splitting was a visible share of this node's
    // time in a CPU profile at 700 req/s).
    const routeOps = new Map<string, ReturnType<typeof opOf>>();
    const routeOp = (method: string | undefined, path: string | undefined): ReturnType<typeof opOf> => {
      const key = `${method ?? ''} ${path ?? ''}`;
      let op = routeOps.get(key);
      if (op === undefined) {
        op = opOf('', method, path);
        if (routeOps.size < 64) routeOps.set(key, op); // bounded: req.path varies only without a route
      }
      return op;
    };

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      const req = msg.req as ReqLike | undefined;
      if (testHooks && !req && msg.topic === 'disturb' && lease) {
        // Test hook (rtEdgeTestHooks): a stuck heater or a runaway drive in the simulated plant.
        const p = (msg.payload ?? {}) as { tempC?: number[]; rpm?: number };
        lease.post({ t: 'disturb', tempC: p.tempC, rpm: p.rpm });
        done();
        return;
      }
      const op = req ? routeOp(req.method, req.route?.path ?? req.path) : opOf(msg.topic, undefined, undefined);
      if (op === null) {
        done(new Error(RED._(`${TYPE}.errors.unknownOp`, { topic: String(msg.topic ?? ''), path: String(req?.path ?? '') })));
        return;
      }
      if (!lease || closing) {
        reply(msg, send, done, op, 503, { error: 'plant-unavailable' });
        return;
      }
      const snap = cell.read();
      const now = Date.now();
      const size = (): number => bodySize(req?.headers?.['content-length'], msg.payload);
      switch (op) {
        case 'status':
        case 'data':
        case 'gpio-get':
          if (!snap) {
            reply(msg, send, done, op, 503, { error: 'not-ready' });
            return;
          }
          if (op === 'status') reply(msg, send, done, op, 200, statusBody(snap, logging, now));
          else if (op === 'data') reply(msg, send, done, op, 200, dataBody(snap, now));
          else reply(msg, send, done, op, 200, { ts: snap.ts, pins: snap.gpio, writable: GPIO_WRITABLE });
          return;
        case 'log-start':
        case 'log-stop': {
          const changed = setLogging(op === 'log-start');
          reply(msg, send, done, op, 200, { logging: logging.on, changed, since: logging.since, records: logging.records });
          return;
        }
        case 'control': {
          const c = validateControl(msg.payload, size(), cfg.maxBody);
          if (!c.ok) {
            refused(msg, send, done, op, c.refusal);
            return;
          }
          submit<{ targets: number[]; dutySets: number[]; rpmSet: number; overspeed: boolean }>({ t: 'control', set: c.value }).then(
            (sp) => reply(msg, send, done, op, 200, { ok: true, applied: c.value, setpoints: { targets_c: sp.targets, duties_pct: sp.dutySets, rpm: sp.rpmSet }, ts: Date.now() }),
            (err) => unavailable(msg, send, done, op, err),
          );
          return;
        }
        case 'gpio-set': {
          const g = validateGpio(msg.payload, size(), cfg.maxBody);
          if (!g.ok) {
            refused(msg, send, done, op, g.refusal);
            return;
          }
          submit<{ pin: string; value: boolean }>({ t: 'gpio', pin: g.value.pin, value: g.value.value }).then(
            (r) => reply(msg, send, done, op, 200, { ok: true, pin: r.pin, value: r.value, pins: cell.read()?.gpio ?? null, ts: Date.now() }),
            (err) => unavailable(msg, send, done, op, err),
          );
          return;
        }
      }
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      // writes still waiting for the end of the turn: sent now, so each is answered before the worker goes
      if (flushing) {
        clearImmediate(flushing);
        flush();
      }
      if (logTimer) clearInterval(logTimer);
      if (uiTimer) clearInterval(uiTimer);
      logTimer = uiTimer = null;
      for (const f of Object.values(fam)) f.detach(labels);
      status.close();
      const finish = (): void => done();
      if (lease) lease.close(2000).then(finish, finish);
      else finish();
    });
  }

  RED.nodes.registerType(TYPE, ControlPlantNode as never);
};
