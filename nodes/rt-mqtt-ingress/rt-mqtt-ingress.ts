// rt-mqtt-ingress: tracking events and authorisations into the flow. The MQTT
// client (and the TCP listener for authorisations) run in a worker thread,
// which parses every payload there and hands the events over through a
// bounded credit gate (try-send): when the flow side has not taken the events
// already posted, the worker drops the new ones and counts them per source.
// This adapter only turns the posted events into messages, gives the credits
// back, and reports drops (a warning at most once a second), link state and
// malformed input (node.error with the raw text, so a Catch node sees it).
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import type { Coded } from '../shared/coded';
import { coreText } from '../shared/i18n';
import type { Node, NodeAPI, NodeMessage } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { SharedMetrics } from '../shared/shared-metrics';
import { ThrottledStatus } from '../shared/status';
import { WorkerLease } from '../shared/worker-host';
import { wallMs as nowMs } from '../shared/time';
import { type BrokerNode, clientSettings } from '../rt-mqtt-broker/broker-config';
import { type IngressDef, readIngress } from './ingress-config';
import { CreditGate, KIND_OF, sourceLimits } from './ingress-core';
import { type ClientInit, HANDOFF_METRICS, type IngressCmd, type IngressCounts, type IngressEvent, ingressMetricSpec, type WireEvent } from './ingress-protocol';

const TYPE = 'rt-mqtt-ingress';

interface IngressNode extends Node {
  /** The worker leases: events/authorisations (and the TCP listener), then frames when both are configured. */
  _leases?: WorkerLease<IngressEvent, IngressCmd>[];
  /** The counters behind the metrics (tests, benchmarks). */
  _counts?: () => IngressCounts;
}

/** Events handed to the flow per turn of the event loop. */
const SLICE = 64;


export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const fam = {
    received: metrics.readerFamily('rtedge_ingress_received_total', 'MQTT messages or TCP lines received by the ingress worker, per source', 'counter'),
    parsed: metrics.readerFamily('rtedge_ingress_parsed_total', 'Valid events parsed by the ingress worker, per source (delivered + dropped + merged)', 'counter'),
    delivered: metrics.readerFamily('rtedge_ingress_delivered_total', 'Events handed to the flow, per source', 'counter'),
    dropped: metrics.readerFamily('rtedge_ingress_dropped_total', 'Events dropped because the flow side had not taken the ones before (queue full), per source', 'counter'),
    malformed: metrics.readerFamily('rtedge_ingress_malformed_total', 'Malformed messages, lines or array elements refused, per source', 'counter'),
    gaps: metrics.readerFamily('rtedge_ingress_gaps_total', 'Frames or events missing by the sensors own numbering (lost before the ingress), per source', 'counter'),
    duplicates: metrics.readerFamily('rtedge_ingress_duplicates_total', 'Frames or events whose number was not above the last one (redelivery or sensor restart), per source', 'counter'),
    merged: metrics.readerFamily('rtedge_ingress_merged_total', 'Frames merged into a later frame of their sensor by the Frame rate (their objects positions kept), per source', 'counter'),
    depth: metrics.readerFamily('rtedge_ingress_queue_depth', 'Events posted by the worker and not yet taken by the flow side', 'gauge'),
    connected: metrics.readerFamily('rtedge_ingress_connected', '1 while the MQTT client is connected', 'gauge'),
    connects: metrics.readerFamily('rtedge_ingress_connects_total', 'Successful MQTT connections (the first one and every reconnect)', 'counter'),
    tcpClients: metrics.readerFamily('rtedge_ingress_tcp_clients', 'Peers connected to the TCP listener', 'gauge'),
    handoff: metrics.sharedHistogramFamily('rtedge_ingress_handoff_seconds', 'Time from the worker receiving an event to the flow side taking it'),
  };

  function MqttIngressNode(this: IngressNode, def: IngressDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const status = new ThrottledStatus(node);
    const broker = (def.broker ? RED.nodes.getNode(def.broker) : null) as BrokerNode | null;
    const cfg = readIngress(def, broker !== null);
    const problems = [...cfg.problems.map(t.text), ...(broker ? broker.config.problems.map(t.text) : [])];
    const leases: WorkerLease<IngressEvent, IngressCmd>[] = [];
    let timer: NodeJS.Timeout | null = null;
    const closeHooks: Array<() => void> = [];
    const attached: Array<{ f: { detach(l: Record<string, string>): void }; labels: Record<string, string> }> = [];

    if (problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: problems.join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    } else {
      const n = cfg.sources.length;
      // Frames (parser tracks) get a worker thread and MQTT connection of their own when the node also takes
      // events or authorisations: in one thread, or on one connection, a flood of frames sits in front of an
      // event (the broker's queue, the socket, libuv's up to 32 reads of 64 KiB per turn) and no hand-off
      // policy after that can take it back.
      const isFrameSub = (x: { source: number }): boolean => cfg.sources[x.source].parser === 'tracks';
      const frameSubs = cfg.subs.filter(isFrameSub);
      const otherSubs = cfg.subs.filter((x) => !isFrameSub(x));
      const plan = frameSubs.length > 0 && (otherSubs.length > 0 || cfg.tcp) ? [{ subs: otherSubs, tcp: cfg.tcp, suffix: '' }, { subs: frameSubs, tcp: null, suffix: '-frames' }] : [{ subs: cfg.subs, tcp: cfg.tcp, suffix: '' }];
      const shareds = plan.map(() => SharedMetrics.create(ingressMetricSpec(n)));
      const shared = {
        counter: (name: string): number => shareds.reduce((a, x) => a + x.counter(name), 0),
        gauge: (name: string): number => (name === 'connected' ? Math.min(...shareds.map((x) => x.gauge(name))) : shareds.reduce((a, x) => a + x.gauge(name), 0)),
      };
      const handoff = SharedMetrics.create(HANDOFF_METRICS);
      const hist = handoff.histogram('handoff');
      const ctl = new SharedArrayBuffer(CreditGate.bytes(n));
      const names = cfg.sources.map((s) => s.name);
      const kinds = cfg.sources.map((s) => KIND_OF[s.parser]);
      const limits = sourceLimits(kinds, cfg.queueLimit, cfg.frameWindow);
      const gates = CreditGate.perSource(ctl, n, limits);
      const depth = (): number => gates.reduce((a, g) => a + g.depth(), 0);
      const delivered = new Array<number>(n).fill(0);
      const labels = { node: node.id };
      const attach = (f: { attach(l: Record<string, string>, r: () => number): void; detach(l: Record<string, string>): void }, l: Record<string, string>, r: () => number): void => {
        f.attach(l, r);
        attached.push({ f, labels: l });
      };
      names.forEach((name, i) => {
        const l = { ...labels, source: name };
        attach(fam.received, l, () => shared.counter(`received.${i}`));
        attach(fam.parsed, l, () => shared.counter(`parsed.${i}`));
        attach(fam.delivered, l, () => delivered[i]);
        attach(fam.dropped, l, () => shared.counter(`dropped.${i}`));
        attach(fam.malformed, l, () => shared.counter(`malformed.${i}`));
        attach(fam.gaps, l, () => shared.counter(`gaps.${i}`));
        attach(fam.duplicates, l, () => shared.counter(`duplicates.${i}`));
        if (cfg.sources[i].frameGapMs) attach(fam.merged, l, () => shared.counter(`merged.${i}`));
      });
      attach(fam.depth, labels, () => depth());
      attach(fam.connected, labels, () => shared.gauge('connected'));
      attach(fam.connects, labels, () => shared.counter('connects'));
      attach(fam.tcpClients, labels, () => shared.gauge('tcp_clients'));
      node._counts = () => ({
        sources: Object.fromEntries(
          names.map((name, i) => [
            name,
            {
              received: shared.counter(`received.${i}`),
              parsed: shared.counter(`parsed.${i}`),
              delivered: delivered[i],
              dropped: shared.counter(`dropped.${i}`),
              malformed: shared.counter(`malformed.${i}`),
              gaps: shared.counter(`gaps.${i}`),
              duplicates: shared.counter(`duplicates.${i}`),
              merged: shared.counter(`merged.${i}`),
            },
          ]),
        ),
        depth: depth(),
        connected: shared.gauge('connected'),
        connects: shared.counter('connects'),
        linkError,
      });
      fam.handoff.attach(labels, hist);
      attached.push({ f: fam.handoff, labels });

      type Link = 'connecting' | 'connected' | 'down' | 'none';
      const links: Link[] = plan.map((p) => (p.subs.length > 0 ? 'connecting' : 'none'));
      // one state for the node: down if a link is down, connecting while one is, else connected (or none)
      const linkOf = (): Link => (links.includes('down') ? 'down' : links.includes('connecting') ? 'connecting' : links.includes('connected') ? 'connected' : 'none');
      let link: Link = linkOf();
      let tcpState: 'off' | 'listening' | 'error' = 'off';
      let outage = false;
      let linkError = '';
      let lastDropped = 0;
      let droppingUntil = 0;
      const show = (): void => {
        if (link === 'down' || tcpState === 'error') status.set('error', RED._(`${TYPE}.status.${link === 'down' ? 'down' : 'tcpError'}`));
        else if (link === 'connecting') status.set('connecting', RED._(`${TYPE}.status.connecting`));
        else if (Date.now() < droppingUntil) status.set('error', RED._(`${TYPE}.status.dropping`, { n: lastDropped }));
        else if (depth() > 0) status.set('depth', RED._(`${TYPE}.status.queued`, { n: depth() }));
        else status.set('ok', RED._(`${TYPE}.status.${link === 'connected' ? 'connected' : 'listening'}`));
      };
      // Per source, in arrival order. Events and authorisations are handed over before frames waiting at the
      // same time: frames are informational (positions), the decisions hang on events and authorisations.
      const pending: WireEvent[][] = names.map(() => []);
      const heads = names.map(() => 0);
      const order = names.map((_, i) => i).sort((x, y) => Number(kinds[x] === 'frame') - Number(kinds[y] === 'frame'));
      let draining = false;
      let closed = false;
      // Credits are given back one turn after the send, when Node-RED has delivered the messages (its delivery is
      // a setImmediate queued before the next drain) and the tracker has processed them: the worker hands over
      // more only as fast as the flow really takes them, so the flow engine's own backlog stays one slice.
      const owed = new Array<number>(n).fill(0);
      let owing = false;
      const waitingOf = (i: number): number => pending[i].length - heads[i];
      const urgent = order.filter((i) => kinds[i] !== 'frame');
      const frames = order.filter((i) => kinds[i] === 'frame');
      const take = (i: number, now: number): void => {
        const e = pending[i][heads[i]++];
        hist.observeUs((now - e.rx) * 1000);
        delivered[i]++;
        owed[i]++;
        owing = true;
        node.send({ topic: e.topic, source: names[i], kind: kinds[i], payload: e.p, ingress: { seq: e.q, received: e.rx } });
        if (heads[i] >= pending[i].length) {
          pending[i].length = 0;
          heads[i] = 0;
        }
      };
      const drain = (): void => {
        if (closed) {
          draining = false;
          return;
        }
        if (owing) {
          for (let i = 0; i < owed.length; i++) if (owed[i] > 0) gates[i].give(owed[i]);
          owed.fill(0);
          owing = false;
        }
        const now = nowMs();
        let n = 0;
        // Events and authorisations first, between them in arrival order (the worker's seq): an
        // authorisation must not overtake the zone events it relates to, nor be overtaken by them.
        while (n < SLICE) {
          let best = -1;
          for (const i of urgent) if (heads[i] < pending[i].length && (best < 0 || pending[i][heads[i]].q < pending[best][heads[best]].q)) best = i;
          if (best < 0) break;
          take(best, now);
          n++;
        }
        for (const i of frames) while (n < SLICE && heads[i] < pending[i].length) {
          take(i, now);
          n++;
        }
        let more = false;
        for (let i = 0; i < pending.length; i++) if (heads[i] < pending[i].length) more = true;
        // one more turn gives back the credits of this slice
        if (more || owing) setImmediate(drain);
        else draining = false;
      };
      closeHooks.push(() => {
        closed = true;
      });
      const settingsOf = (suffix: string) => (broker ? clientSettings(broker.config, broker.credentials, `-${node.id}${suffix}`, () => randomBytes(4).toString('hex')) : null);
      const settings = settingsOf('');
      plan.forEach((part, k) => {
        const init: ClientInit = {
          role: 'client',
          mqtt: part.subs.length > 0 ? settingsOf(part.suffix) : null,
          sources: cfg.sources,
          subs: part.subs,
          tcp: part.tcp,
          ctl,
          limits,
          maxBytes: cfg.maxBytes,
          metrics: shareds[k].sab,
        };
        const mine = new Set([...part.subs.map((x) => x.source), ...(part.tcp ? [part.tcp.source] : [])]);
        const lease = new WorkerLease<IngressEvent, IngressCmd>({
          script: join(__dirname, 'mqtt.worker.js'),
          ...(broker ? { key: `${broker.workerKey}${part.suffix}` } : { shared: false }),
          init,
          onEvent: (ev) => {
            switch (ev.t) {
              case 'batch':
                // Taken in slices (drain), so a full queue never runs as one long task on the flow engine.
                for (const e of ev.ev) pending[e.s].push(e);
                if (!draining) {
                  draining = true;
                  setImmediate(drain);
                }
                return;
              case 'malformed': {
                gates[ev.s].give(1);
                const msg: NodeMessage = { topic: ev.topic, source: names[ev.s], payload: ev.raw };
                status.immediate('error', RED._(`${TYPE}.status.malformed`));
                node.error(RED._(`${TYPE}.errors.malformed`, { source: names[ev.s], topic: ev.topic, error: t.text(ev.error as Coded) }), msg);
                return;
              }
              case 'link': {
                if (!(ev.state === 'connecting' && links[k] === 'down')) links[k] = ev.state;
                link = linkOf();
                if (ev.state === 'down' && ev.error) linkError = ev.error;
                if (ev.state === 'down' && !outage) {
                  outage = true;
                  node.warn(RED._(`${TYPE}.errors.linkDown`, { url: settings?.url ?? '', error: ev.error ?? '' }));
                } else if (link === 'connected' && outage) {
                  outage = false;
                  node.log(RED._(`${TYPE}.linkUp`, { url: settings?.url ?? '' }));
                }
                show();
                return;
              }
              case 'tcp':
                tcpState = ev.state;
                if (ev.state === 'error') {
                  const text = RED._(`${TYPE}.errors.tcpListen`, { host: cfg.tcp?.host ?? '', port: ev.port, error: ev.error ?? '' });
                  node.error(text, { topic: 'error', payload: { error: text } }); // a message, so Catch nodes see it
                }
                show();
                return;
              default:
                return;
            }
          },
          onError: (err) => {
            const text = RED._(`${TYPE}.errors.worker`, { error: t.errorText(err) });
            node.error(text, { topic: 'error', payload: { error: text } });
            status.immediate('error', RED._(`${TYPE}.status.restarting`));
          },
          onRestart: () => {
            // The dead worker's posted events that never arrived are gone: only those still waiting here hold credits.
            gates.forEach((g, i) => {
              if (!mine.has(i)) return;
              g.resetTo(waitingOf(i));
              owed[i] = 0;
            });
          },
        });
        leases.push(lease);
      });
      node._leases = leases;
      for (const l of leases) l.start();
      show();
      // Drops are counted in the worker; warned here at most once a second, with the running counts per source.
      timer = setInterval(() => {
        let total = 0;
        const parts: string[] = [];
        names.forEach((name, i) => {
          const d = shared.counter(`dropped.${i}`);
          total += d;
          if (d > 0) parts.push(`${name} ${d}`);
        });
        if (total > lastDropped) {
          node.warn(RED._(`${TYPE}.errors.dropWarn`, { n: total, detail: parts.join(', '), limit: cfg.queueLimit, window: cfg.frameWindow }));
          lastDropped = total;
          droppingUntil = Date.now() + 2000;
        }
        show();
      }, 1000);
      timer.unref();
    }

    node.on('close', (_removed: boolean, done: () => void) => {
      if (timer) clearInterval(timer);
      timer = null;
      for (const h of closeHooks) h();
      const finish = (): void => {
        for (const a of attached) a.f.detach(a.labels);
        status.close();
        done();
      };
      if (leases.length === 0) finish();
      else Promise.all(leases.map((l) => l.close(3000))).then(finish, finish);
    });
  }

  RED.nodes.registerType(TYPE, MqttIngressNode as never);
};

