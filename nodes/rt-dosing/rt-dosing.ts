// rt-dosing: doses a target weight onto the scale. The controller (a dose
// runner) runs in the scale's worker thread as a consumer of the scale's
// sample stream, stepping on every sample; each rt-dosing node has its own
// runner, its own lease (its events reach only it), its own metrics and its
// own learned plant (stored per node and scale, learned-store.ts). This node
// only starts doses, stops them, and turns results and progress into messages
// and metrics. A crash of the HAL worker mid-dose ends that dose with an error
// result; the runner is attached again when the worker has restarted, from
// what was learned so far. The editor reads the learned plant of a deployed
// node and can make it forget (admin endpoints below).
import { join } from 'node:path';

import { type AdminHandler, needs } from '../shared/admin';
import { coreText } from '../shared/i18n';
import type { DoneFn, HttpRequest, HttpResponse, Node, NodeAPI, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { type SharedHistogram, SharedMetrics } from '../shared/shared-metrics';
import { ThrottledStatus } from '../shared/status';
import type { ConsumerLink, ScaleNode, ScaleNotice } from '../rt-scale/scale-api';
import type { DosingNodeApi } from './dosing-api';
import type { LearnedPlant } from './dosing-core';
import { type DosingDef, readDosing } from './dosing-config';
import { DOSING_METRICS, type DosingCmd, type DosingEvent, type DosingInit } from './dosing-protocol';
import { learnedPayload, resultPayload } from './dose-result';
import { type Prior, priorOf, priorTauUs, storedLearning } from './learned-store';

const TYPE = 'rt-dosing';
const r3 = (v: number): number => Math.round(v * 1000) / 1000;

/** An error the admin endpoint answers with a status other than 500. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Pending {
  msg: NodeMessage;
  send: SendFn;
  done: DoneFn;
  targetCg: number;
  recipe?: string;
}

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const doses = metrics.counter('rtedge_dosing_doses_total', 'Doses finished, by result (ok, under, over, aborted, error)', ['node', 'result']);
  const overshoot = metrics.histogram('rtedge_dosing_overshoot_grams', 'Final weight above the target (0 when under)', ['node'], [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]);
  const doseTime = metrics.histogram('rtedge_dosing_dose_duration_seconds', 'Dose time, start to judged result', ['node'], [1, 2, 3, 4, 5, 6, 7, 7.5, 8, 10, 15, 20, 30, 60]);
  const errorAbs = metrics.histogram('rtedge_dosing_error_abs_grams', 'Absolute dose error', ['node'], [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1]);
  const stepLat = metrics.sharedHistogramFamily('rtedge_dosing_step_latency_seconds', 'Control step latency: data-ready edge to motor command, in the worker');
  const tauGauge = metrics.readerFamily('rtedge_dosing_inflight_tau_seconds', 'Learned in-flight time (stop latency + transport delay)', 'gauge');
  const testHooks = RED.settings.rtEdgeTestHooks === true;
  const consumerModule = join(__dirname, 'dosing.consumer.js');

  // The editor shows what a deployed dosing node learned of its plant and can make it forget
  // (read and write permissions of this node type, as rt-scale's calibration endpoint).
  const allow = (perm: string): AdminHandler => needs(RED, perm);
  const json = (res: HttpResponse, status: number, body: unknown): void => {
    res.status(status).set('Content-Type', 'application/json').send(JSON.stringify(body));
  };
  const dosingNode = (req: HttpRequest): DosingNodeApi | null => {
    const n = RED.nodes.getNode(req.params?.id ?? '') as DosingNodeApi | null;
    return n && n.type === TYPE && typeof n.learnedView === 'function' ? n : null;
  };
  RED.httpAdmin?.get(`/${TYPE}/:id/learned`, allow(`${TYPE}.read`), (req: HttpRequest, res: HttpResponse) => {
    const n = dosingNode(req);
    if (!n) {
      json(res, 404, { error: RED._(`${TYPE}.errors.notDeployed`) });
      return;
    }
    const v = n.learnedView();
    json(res, 200, {
      running: v.running,
      loaded: v.loaded,
      learned: v.learned ? learnedPayload(v.learned) : null,
      raw: v.learned,
      ...(v.legacyTauUs > 0 ? { legacy_tau_ms: Math.round(v.legacyTauUs / 10) / 100 } : {}),
    });
  });
  RED.httpAdmin?.post?.(`/${TYPE}/:id/forget`, allow(`${TYPE}.write`), (req: HttpRequest, res: HttpResponse) => {
    const n = dosingNode(req);
    if (!n) {
      json(res, 404, { error: RED._(`${TYPE}.errors.notDeployed`) });
      return;
    }
    n.forget().then(
      () => json(res, 200, { forgotten: true }),
      (err: unknown) => json(res, err instanceof HttpError ? err.status : 500, { error: (err as Error).message }),
    );
  });

  function DosingNode(this: Node, def: DosingDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const scale = (def.scale ? RED.nodes.getNode(def.scale) : null) as ScaleNode | null;
    const labels = { node: node.id };
    // learned values are kept per dosing node and per station (scale)
    const stateKey = scale ? `dosing-${node.id}-scale-${scale.id}` : '';
    const legacyKey = `dosing-${node.id}`;
    let learned: LearnedPlant | null = null; // nothing known until the station has measured its plant
    let legacyTauUs = 0; // an older version's stored in-flight time, until the first dose learns a plant
    const prior = (): Prior => learned ?? (legacyTauUs > 0 ? legacyTauUs : null);
    let configured = false;
    let closing = false;
    let pending: Pending | null = null;
    let detach: (() => Promise<void>) | null = null;
    let link: ConsumerLink<DosingCmd> | null = null;
    let init: DosingInit | null = null;
    let stepHist: SharedHistogram | null = null;
    let tauLoaded = false;
    let scaleReady = false;
    const cfg = readDosing(def, scale ? scale.config.capacityCg : 500_000);

    const fail = (text: string): void => {
      node.error(text);
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    };

    /** Ends the pending dose without a controller record (the worker died): an error result, and the node takes the next dose. */
    const endPendingWithError = (reason: string, err: unknown): void => {
      const p = pending;
      pending = null;
      if (!p) return;
      doses.inc({ ...labels, result: 'error' });
      p.msg.payload = { target_g: p.targetCg / 100, result: 'error', reason, ...(p.recipe !== undefined ? { recipe: p.recipe } : {}) };
      p.msg.topic = 'dose';
      p.send([p.msg, null]);
      p.done(new Error(RED._(`${TYPE}.errors.crashed`, { error: t.errorText(err) })));
    };

    const store = (value: LearnedPlant | null): Promise<void> =>
      scale!.store.writeState(stateKey, storedLearning(value)).catch((err: unknown) => node.warn(RED._(`${TYPE}.errors.store`, { error: (err as Error).message })));

    const onDone = (ev: Extract<DosingEvent, { t: 'done' }>): void => {
      const rec = ev.rec;
      if (rec.result !== 'aborted' && rec.learned) {
        // the whole learned plant, kept for a worker restart and stored (asynchronous, atomic, durable) for a redeploy or a restart
        learned = rec.learned;
        legacyTauUs = 0;
        if (init) init.prior = learned;
        void store(learned);
      }
      doses.inc({ ...labels, result: rec.result });
      if (rec.result !== 'aborted') {
        overshoot.observe(labels, Math.max(0, rec.errorCg) / 100);
        errorAbs.observe(labels, Math.abs(rec.errorCg) / 100);
        doseTime.observe(labels, rec.durationUs / 1e6);
      }
      const payload = resultPayload(rec);
      const kind = rec.result === 'ok' ? 'ok' : rec.result === 'aborted' ? 'error' : 'connecting';
      const text = rec.result === 'aborted' ? RED._(`${TYPE}.status.aborted`, { reason: rec.reason ?? '' }) : RED._(`${TYPE}.status.done`, { result: rec.result, g: (rec.finalCg / 100).toFixed(2) });
      status.immediate(kind, text);
      const p = pending;
      pending = null;
      if (p) {
        p.msg.payload = payload;
        p.msg.topic = 'dose';
        p.send([p.msg, null]);
        if (rec.result === 'aborted' && rec.reason !== 'stop' && rec.reason !== 'closed') p.done(new Error(RED._(`${TYPE}.errors.aborted`, { reason: rec.reason ?? '' })));
        else p.done();
      } else node.send([{ topic: 'dose', payload }, null]);
    };

    const attachRunner = (): void => {
      if (!scale || link || closing || !tauLoaded || !scaleReady) return;
      const sm = SharedMetrics.create(DOSING_METRICS);
      init = { params: cfg.params, prior: prior(), progressEveryUs: cfg.progressEveryMs * 1000, metrics: sm.sab, testHooks };
      stepHist = sm.histogram('step');
      stepLat.attach(labels, stepHist);
      link = scale.attachConsumer<DosingCmd, DosingEvent>({
        module: consumerModule,
        init,
        onReady: () => {
          configured = true;
          status.set('ok', RED._(`${TYPE}.status.idle`));
        },
        onError: (err) => {
          configured = false;
          const text = RED._(`${TYPE}.errors.configure`, { error: t.errorText(err) });
          endPendingWithError('worker-crashed', err);
          node.error(text);
          status.immediate('error', RED._(`${TYPE}.status.error`));
        },
        onEvent: (ev) => {
          if (ev.t === 'progress') {
            const p = ev.p;
            status.set('depth', RED._(`${TYPE}.status.running`, { state: p.state, g: (p.netCg / 100).toFixed(2) }));
            node.send([null, { topic: 'progress', payload: { state: p.state, net_g: p.netCg / 100, target_g: p.targetCg / 100, elapsed_s: r3(p.elapsedUs / 1e6) } }]);
          } else if (ev.t === 'done') onDone(ev);
        },
      });
    };

    if (!scale) fail(RED._(`${TYPE}.errors.noScale`));
    else if (cfg.problems.length) fail(RED._(`${TYPE}.errors.badConfig`, { problems: cfg.problems.map(t.text).join('; ') }));
    else {
      tauGauge.attach(labels, () => priorTauUs(prior()) / 1e6);
      status.immediate('connecting', RED._(`${TYPE}.status.starting`));
      // the learned plant, read asynchronously (an older version's {tauUs}, or its file of the legacy name, when there is none yet)
      void scale.store
        .readState<unknown>(stateKey)
        .then(async (s) => {
          const own = priorOf(s); // null: forgotten (the legacy file is not read again); undefined: nothing stored here
          return own !== undefined ? own : priorOf(await scale.store.readState<unknown>(legacyKey));
        })
        .then(
          (p) => {
            if (typeof p === 'number') legacyTauUs = p;
            else if (p) learned = p;
          },
          () => undefined,
        )
        .then(() => {
          tauLoaded = true;
          attachRunner();
        });
      detach = scale.attach({
        onNotice: (n: ScaleNotice) => {
          if (n.t === 'ready') {
            scaleReady = true;
            attachRunner();
          } else if (n.t === 'error') {
            node.error(n.message, { topic: 'error', payload: { error: n.message } });
            status.immediate('error', RED._(`${TYPE}.status.error`));
          }
        },
      });
    }

    const api = node as DosingNodeApi;
    api.learnedView = () => ({ learned, legacyTauUs, running: pending !== null, loaded: tauLoaded });
    api.stepHistogram = () => stepHist;
    api.forget = async () => {
      if (!scale || cfg.problems.length) throw new HttpError(409, RED._(`${TYPE}.errors.notConfigured`));
      if (pending) throw new HttpError(409, RED._(`${TYPE}.errors.forgetBusy`));
      if (!tauLoaded) throw new HttpError(409, RED._(`${TYPE}.errors.notReady`)); // the stored plant is still being read
      // the runner forgets first (it refuses while a dose runs there); a runner not attached yet starts from
      // init, but one being attached was already built from the old plant: not ready, try again
      if (link && !configured) throw new HttpError(409, RED._(`${TYPE}.errors.notReady`));
      if (link) {
        try {
          await link.request({ t: 'forget' });
        } catch (err) {
          throw new HttpError(409, RED._(`${TYPE}.errors.forgetRefused`, { error: t.errorText(err) }));
        }
      }
      learned = null;
      legacyTauUs = 0;
      if (init) init.prior = null;
      // the file too (a redeploy must not bring the plant back): a failure is the caller's error
      await scale.store.writeState(stateKey, storedLearning(null)).catch((err: unknown) => {
        throw new HttpError(500, RED._(`${TYPE}.errors.store`, { error: (err as Error).message }));
      });
      node.log(RED._(`${TYPE}.forgotten`));
    };

    if (testHooks) {
      // Test hook: kills the HAL worker (an uncaught exception in it), e.g. mid-dose. False when the runner is not attached.
      (node as Node & { _crashWorker?: () => boolean })._crashWorker = () => {
        if (!link) return false;
        link.request({ t: 'crash' }).catch(() => undefined);
        return true;
      };
    }

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      if (!scale || cfg.problems.length) {
        done(new Error(RED._(`${TYPE}.errors.notConfigured`)));
        return;
      }
      const topic = typeof msg.topic === 'string' ? msg.topic.toLowerCase() : '';
      if (topic === 'stop' || topic === 'abort') {
        if (!link || !configured) {
          done(new Error(RED._(`${TYPE}.errors.notReady`)));
          return;
        }
        link.request({ t: 'stop', reason: 'stop' }).then(
          () => done(),
          (err: unknown) => done(t.error(err)),
        );
        return;
      }
      const p = msg.payload;
      const o = typeof p === 'object' && p !== null ? (p as Record<string, unknown>) : { target: p };
      const g = o.target;
      if (typeof g !== 'number' && !(typeof g === 'string' && g.trim() !== '')) {
        done(new Error(RED._(`${TYPE}.errors.badTarget`, { value: JSON.stringify(g ?? null) })));
        return;
      }
      const grams = Number(g);
      if (!Number.isFinite(grams) || grams <= 0) {
        done(new Error(RED._(`${TYPE}.errors.badTarget`, { value: JSON.stringify(g) })));
        return;
      }
      const targetCg = Math.round(grams * 100);
      const limit = cfg.params.neverExceedCg ?? scale.config.capacityCg;
      if (targetCg >= limit || targetCg > scale.config.capacityCg) {
        done(new Error(RED._(`${TYPE}.errors.overCapacity`, { g: grams, cap: Math.min(limit, scale.config.capacityCg) / 100 })));
        return;
      }
      if (pending) {
        done(new Error(RED._(`${TYPE}.errors.busy`)));
        return;
      }
      if (!configured || !link) {
        done(new Error(RED._(`${TYPE}.errors.notReady`)));
        return;
      }
      const recipe = typeof o.recipe === 'string' ? o.recipe : undefined;
      const mine: Pending = { msg, send, done, targetCg, ...(recipe !== undefined ? { recipe } : {}) };
      pending = mine;
      link.request({ t: 'dose', targetCg, recipe }).then(
        () => {
          if (pending === mine) status.set('depth', RED._(`${TYPE}.status.running`, { state: 'taring', g: '0.00' }));
        },
        (err: unknown) => {
          if (pending !== mine) return; // already ended (a crash ends it with an error result)
          pending = null;
          status.immediate('error', RED._(`${TYPE}.status.error`));
          done(t.error(err));
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      tauGauge.detach(labels);
      stepLat.detach(labels);
      status.close();
      const finish = (): void => {
        if (pending) pending.done();
        pending = null;
        done();
      };
      if (!scale || !detach) {
        finish();
        return;
      }
      // the motor stops in the worker before the runner and the scale let go
      const d = detach;
      const l = link;
      link = null;
      const stopped = l ? l.request({ t: 'stop', reason: 'closed' }, 2000).catch(() => undefined) : Promise.resolve();
      stopped
        .then(() => l?.close(2000))
        .catch(() => undefined)
        .then(() => d())
        .then(() => scale.store.idle()) // the learned value is on disk before the node is gone
        .then(finish, finish);
    });
  }

  RED.nodes.registerType(TYPE, DosingNode as never);
};
