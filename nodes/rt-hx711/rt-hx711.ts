// rt-hx711: the load cell's weight in the flow. Sampling runs in the scale's
// worker at 80 SPS; this node receives the drained samples and sends weight
// messages at a flow-friendly rate. Inputs: tare, calibrate (known grams),
// power on/off, and on the simulated backend: simulate.
import type { Coded } from '../shared/coded';
import { coreText } from '../shared/i18n';
import { readLimited } from '../shared/limits';
import type { DoneFn, Node, NodeAPI, NodeDef, NodeMessage, SendFn } from '../shared/red-types';
import { ThrottledStatus } from '../shared/status';
import { FLAG_FAULT, FLAG_STABLE } from '../rt-scale/sampler-core';
import type { DecodedSample, ScaleNode, ScaleNotice } from '../rt-scale/scale-api';
import type { ScaleCmd } from '../rt-scale/scale-protocol';
import { WeightEmitter } from './weight-emitter';

const TYPE = 'rt-hx711';

interface Hx711Def extends NodeDef {
  version?: number;
  scale?: string;
  rate?: number | string;
  deltaG?: number | string;
}

function weightPayload(s: DecodedSample): Record<string, unknown> {
  return {
    grams: s.cg / 100,
    centigrams: s.cg,
    raw: s.raw,
    stable: (s.flags & FLAG_STABLE) !== 0,
    ts: s.ts,
    seq: s.seq,
    ...((s.flags & FLAG_FAULT) !== 0 ? { fault: true } : {}),
  };
}

function toBool(v: unknown): boolean | null {
  if (v === true || v === 1 || v === 'on' || v === 'true' || v === '1') return true;
  if (v === false || v === 0 || v === 'off' || v === 'false' || v === '0') return false;
  return null;
}

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  function Hx711Node(this: Node, def: Hx711Def): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const scale = (def.scale ? RED.nodes.getNode(def.scale) : null) as ScaleNode | null;
    // the same limits as the editor's (nodes/shared/limits.ts): out of range refuses to start
    const problems: Coded[] = [];
    const rate = readLimited(TYPE, 'rate', def.rate, 10, problems);
    const periodUs = rate > 0 ? Math.round(1e6 / rate) : 0;
    const deltaCg = Math.round(readLimited(TYPE, 'deltaG', def.deltaG, 0.5, problems) * 100);
    const emitter = new WeightEmitter(periodUs, Math.max(0, deltaCg));
    let fault: string | null = null;
    let powered = true;
    let detach: (() => Promise<void>) | null = null;

    const showWeight = (s: DecodedSample): void => {
      if (fault || !powered) return;
      const text = RED._(`${TYPE}.status.weight`, { g: (s.cg / 100).toFixed(2) });
      status.set((s.flags & FLAG_STABLE) !== 0 ? 'ok' : 'connecting', text);
    };

    if (problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: problems.map(t.text).join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    } else if (!scale) {
      node.error(RED._(`${TYPE}.errors.noScale`));
      status.immediate('error', RED._(`${TYPE}.status.noScale`));
    } else {
      status.immediate('connecting', RED._(`${TYPE}.status.starting`));
      detach = scale.attach({
        onSamples: (batch) => {
          for (const s of emitter.pick(batch)) node.send({ topic: 'weight', payload: weightPayload(s) });
          showWeight(batch[batch.length - 1]);
        },
        onNotice: (n: ScaleNotice) => {
          if (n.t === 'error') {
            node.error(n.message, { topic: 'error', payload: { error: n.message } }); // a message, so Catch nodes see it
            status.immediate('error', RED._(`${TYPE}.status.error`));
          } else if (n.t === 'fault') {
            fault = n.reason;
            node.error(RED._(`${TYPE}.errors.fault`, { reason: n.reason, run: n.run }), { topic: 'fault', payload: { reason: n.reason, run: n.run } });
            status.immediate('error', RED._(`${TYPE}.status.fault`, { reason: n.reason }));
          } else if (n.t === 'recovered') {
            fault = null;
            node.log(RED._(`${TYPE}.errors.recovered`));
          } else if (n.t === 'ready') {
            status.set('connecting', RED._(`${TYPE}.status.settling`));
          }
        },
      });
    }

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      if (problems.length > 0) {
        done(new Error(RED._(`${TYPE}.errors.badConfig`, { problems: problems.map(t.text).join('; ') })));
        return;
      }
      if (!scale) {
        done(new Error(RED._(`${TYPE}.errors.noScale`)));
        return;
      }
      const topic = typeof msg.topic === 'string' ? msg.topic.toLowerCase() : '';
      let cmd: ScaleCmd;
      const p = msg.payload;
      if (topic === 'tare') cmd = { t: 'tare' };
      else if (topic === 'calibrate') {
        const g = typeof p === 'object' && p !== null ? Number((p as { grams?: unknown }).grams) : Number(p);
        if (!Number.isFinite(g) || g <= 0 || typeof p === 'boolean' || p === '' || p === null) {
          done(new Error(RED._(`${TYPE}.errors.badWeight`, { value: JSON.stringify(p) })));
          return;
        }
        if (g * 100 > scale.config.capacityCg) {
          done(new Error(RED._(`${TYPE}.errors.overCapacity`, { g, cap: scale.config.capacityCg / 100 })));
          return;
        }
        cmd = { t: 'calibrate', knownCg: Math.round(g * 100) };
      } else if (topic === 'power') {
        const on = toBool(p);
        if (on === null) {
          done(new Error(RED._(`${TYPE}.errors.badPower`, { value: JSON.stringify(p) })));
          return;
        }
        cmd = { t: 'power', on };
      } else if (topic === 'simulate') {
        if (scale.config.backend !== 'simulated') {
          done(new Error(RED._(`${TYPE}.errors.notSimulated`)));
          return;
        }
        const o = (typeof p === 'object' && p !== null ? p : {}) as Record<string, unknown>;
        const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
        cmd = {
          t: 'sim',
          loadG: num(o.load_g),
          empty: o.empty === true,
          jammed: typeof o.jammed === 'boolean' ? o.jammed : undefined,
          flowScale: num(o.flow_scale),
          faults: { stall: o.stall === true ? true : o.stall === false ? false : undefined, stuck: o.stuck === true ? true : o.stuck === false ? false : undefined, stretchProb: num(o.stretch) },
        };
        if (cmd.faults && Object.values(cmd.faults).every((v) => v === undefined)) delete cmd.faults;
      } else {
        done(new Error(RED._(`${TYPE}.errors.unknownTopic`, { topic: String(msg.topic ?? '') })));
        return;
      }
      scale.request<unknown>(cmd, 10_000).then(
        (r) => {
          if (cmd.t === 'power') {
            powered = (cmd as { on: boolean }).on;
            if (!powered) status.immediate('stopped', RED._(`${TYPE}.status.off`));
            else status.set('connecting', RED._(`${TYPE}.status.settling`));
          }
          if (cmd.t === 'tare' || cmd.t === 'calibrate') {
            const c = r as { zero: number; cpgMilli: number };
            msg.payload = { zero: c.zero, counts_per_gram: c.cpgMilli / 1000 };
            send(msg);
          }
          done();
        },
        (err: Error) => {
          status.immediate('error', RED._(`${TYPE}.status.error`));
          done(err);
        },
      );
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      status.close();
      if (!detach) done();
      else detach().then(done, done);
    });
  }

  RED.nodes.registerType(TYPE, Hx711Node as never);
};
