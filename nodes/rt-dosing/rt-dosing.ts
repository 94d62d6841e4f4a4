// rt-dosing: doses a target weight onto the scale. The controller runs in the
// scale's worker thread, stepping on every sample the sampler publishes; this
// node only starts doses, stops them, and turns results and progress into
// messages and metrics. The learned in-flight time survives restarts.
import { coreText } from '../shared/i18n';
import type { DoneFn, Node, NodeAPI, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { ThrottledStatus } from '../shared/status';
import type { ScaleNode, ScaleNotice } from '../rt-scale/scale-api';
import { type DosingDef, readDosing } from './dosing-config';
import { resultPayload } from './dose-result';

const TYPE = 'rt-dosing';
const r3 = (v: number): number => Math.round(v * 1000) / 1000;

interface Pending {
  msg: NodeMessage;
  send: SendFn;
  done: DoneFn;
}

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const doses = metrics.counter('rtedge_dosing_doses_total', 'Doses finished, by result (ok, under, over, aborted)', ['node', 'result']);
  const overshoot = metrics.histogram('rtedge_dosing_overshoot_grams', 'Final weight above the target (0 when under)', ['node'], [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]);
  const doseTime = metrics.histogram('rtedge_dosing_dose_duration_seconds', 'Dose time, start to judged result', ['node'], [1, 2, 3, 4, 5, 6, 7, 7.5, 8, 10, 15, 20, 30, 60]);
  const errorAbs = metrics.histogram('rtedge_dosing_error_abs_grams', 'Absolute dose error', ['node'], [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1]);
  const stepLat = metrics.sharedHistogramFamily('rtedge_dosing_step_latency_seconds', 'Control step latency: data-ready edge to motor command, in the worker');
  const tauGauge = metrics.readerFamily('rtedge_dosing_inflight_tau_seconds', 'Learned in-flight time (stop latency + transport delay)', 'gauge');

  function DosingNode(this: Node, def: DosingDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const scale = (def.scale ? RED.nodes.getNode(def.scale) : null) as ScaleNode | null;
    const labels = { node: node.id };
    const stateKey = `dosing-${node.id}`;
    let tauUs = 0; // nothing known until the station has measured its plant
    let configured = false;
    let pending: Pending | null = null;
    let detach: (() => Promise<void>) | null = null;
    const cfg = readDosing(def, scale ? scale.config.capacityCg : 500_000);

    const fail = (text: string): void => {
      node.error(text);
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    };
    if (!scale) fail(RED._(`${TYPE}.errors.noScale`));
    else if (cfg.problems.length) fail(RED._(`${TYPE}.errors.badConfig`, { problems: cfg.problems.map(t.text).join('; ') }));
    else {
      const stored = scale.store.readState<{ tauUs: number }>(stateKey);
      if (stored && Number.isInteger(stored.tauUs) && stored.tauUs > 0) tauUs = stored.tauUs;
      tauGauge.attach(labels, () => tauUs / 1e6);
      status.immediate('connecting', RED._(`${TYPE}.status.starting`));
      const configure = (): void => {
        scale.request<number>({ t: 'dose-config', params: cfg.params, tauUs, progressEveryUs: cfg.progressEveryMs * 1000 }).then(
          (tau) => {
            configured = true;
            tauUs = tau;
            const sm = scale.sharedMetrics();
            if (sm) stepLat.attach(labels, sm.histogram('step'));
            status.set('ok', RED._(`${TYPE}.status.idle`));
          },
          (err: Error) => {
            node.error(RED._(`${TYPE}.errors.configure`, { error: err.message }));
            status.immediate('error', RED._(`${TYPE}.status.error`));
          },
        );
      };
      detach = scale.attach({
        onNotice: (n: ScaleNotice) => {
          if (n.t === 'ready') configure();
          else if (n.t === 'error') {
            configured = false;
            node.error(n.message, { topic: 'error', payload: { error: n.message } });
            status.immediate('error', RED._(`${TYPE}.status.error`));
          } else if (n.t === 'dose-progress') {
            const p = n.p;
            status.set('depth', RED._(`${TYPE}.status.running`, { state: p.state, g: (p.netCg / 100).toFixed(2) }));
            node.send([null, { topic: 'progress', payload: { state: p.state, net_g: p.netCg / 100, target_g: p.targetCg / 100, elapsed_s: r3(p.elapsedUs / 1e6) } }]);
          } else if (n.t === 'dose-done') {
            const rec = n.rec;
            if (rec.result !== 'aborted' && rec.tauUs !== tauUs) {
              tauUs = rec.tauUs;
              try {
                scale.store.writeState(stateKey, { tauUs, at: new Date().toISOString() });
              } catch (err) {
                node.warn(RED._(`${TYPE}.errors.store`, { error: (err as Error).message }));
              }
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
          }
        },
      });
    }

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      if (!scale || cfg.problems.length) {
        done(new Error(RED._(`${TYPE}.errors.notConfigured`)));
        return;
      }
      const topic = typeof msg.topic === 'string' ? msg.topic.toLowerCase() : '';
      if (topic === 'stop' || topic === 'abort') {
        scale.request({ t: 'dose-stop', reason: 'stop' }).then(
          () => done(),
          (err: Error) => done(err),
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
      if (!configured) {
        done(new Error(RED._(`${TYPE}.errors.notReady`)));
        return;
      }
      const recipe = typeof o.recipe === 'string' ? o.recipe : undefined;
      pending = { msg, send, done };
      scale.request({ t: 'dose', targetCg, recipe }).then(
        () => status.set('depth', RED._(`${TYPE}.status.running`, { state: 'taring', g: '0.00' })),
        (err: Error) => {
          pending = null;
          status.immediate('error', RED._(`${TYPE}.status.error`));
          done(err);
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
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
      // the motor stops in the worker before the scale lets go
      const d = detach;
      scale
        .request({ t: 'dose-stop', reason: 'closed' }, 2000)
        .catch(() => undefined)
        .then(() => d())
        .then(finish, finish);
    });
  }

  RED.nodes.registerType(TYPE, DosingNode as never);
};
