// rt-journey-tracker: turns tracking events, frames and authorisations
// (msg.kind frame | event | auth, as rt-mqtt-ingress delivers them) and the
// door state (flow context, the key rt-rs485-watch writes; or msg.door) into
// gate commands (output 1, to rt-gate-command: sent, never awaited), journeys
// with exactly one outcome (output 2, to rt-journey-egress) and business
// events (output 3, also logged at info). All decisions are in tracker-core.ts
// (pure, O(1) per event); this file only adapts messages, clock, log, status
// and metrics. Runs on the flow engine's thread: it never awaits I/O.
import { coreText } from '../shared/i18n';
import type { DoneFn, Node, NodeAPI, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { ThrottledStatus } from '../shared/status';
import { readTrackerConfig, type TrackerDef } from './tracker-config';
import { type BusinessTopic, JourneyTracker, OUTCOMES, sameLayout, TrackerInputError, type TrackerSink } from './tracker-core';

const TYPE = 'rt-journey-tracker';
/** How often time is advanced (TTL, stitch window, waiting authorisations). */
const TICK_MS = 100;
/** How long a closed node's tracker waits for the node that replaces it (a deploy takes seconds). */
const HANDOVER_MS = 60_000;

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const fam = {
    tracks: metrics.readerFamily('rtedge_tracker_tracks', 'Live tracks in the tracker', 'gauge'),
    inputs: metrics.readerFamily('rtedge_tracker_inputs_total', 'Messages taken in, by kind (frame, event, auth)', 'counter'),
    journeys: metrics.readerFamily('rtedge_tracker_journeys_total', 'Journeys ended, by outcome', 'counter'),
    gateOpens: metrics.readerFamily('rtedge_tracker_gate_opens_total', 'Gate commands sent for authorised tracks', 'counter'),
    unauthorized: metrics.readerFamily('rtedge_tracker_gate_unauthorized_total', 'Gate-zone entries without an authorisation ("gate entry not authorized")', 'counter'),
    lateAuths: metrics.readerFamily('rtedge_tracker_late_auths_total', 'Authorisations matched after the track entered the gate zone', 'counter'),
    auths: metrics.readerFamily('rtedge_tracker_auths_total', 'Authorisations by result (matched, unmatched)', 'counter'),
    stitches: metrics.readerFamily('rtedge_tracker_stitches_total', 'Broken tracks continued by a new track id', 'counter'),
    evicted: metrics.readerFamily('rtedge_tracker_evicted_total', 'Tracks ended lost because the track table was full', 'counter'),
    badInput: metrics.readerFamily('rtedge_tracker_bad_input_total', 'Messages rejected as bad input', 'counter'),
  };

  /**
   * Trackers of nodes closed by a deploy (not removed), for the node of the same id that the deploy starts next:
   * shoppers in the store keep their journeys (and authorisations) across a redeploy. Taken by that node, or
   * dropped after HANDOVER_MS (a node that was not started again).
   */
  const handover = new Map<string, { tracker: JourneyTracker; at: number }>();
  const takeHandover = (id: string): JourneyTracker | null => {
    const now = Date.now();
    for (const [k, v] of handover) if (now - v.at > HANDOVER_MS) handover.delete(k);
    const h = handover.get(id);
    handover.delete(id);
    return h ? h.tracker : null;
  };

  function JourneyTrackerNode(this: Node, def: TrackerDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readTrackerConfig(def);
    const status = new ThrottledStatus(node);
    const labels = { node: node.id };
    const flow = node.context().flow;
    let badInput = 0;
    let inError = false;

    // Outputs of one input message are collected and sent together through its send();
    // outputs of a tick (TTL, stitch window, waiting authorisations) go through node.send.
    let gates: NodeMessage[] = [];
    let journeys: NodeMessage[] = [];
    let events: NodeMessage[] = [];
    const sink: TrackerSink = {
      gate: (cmd) => gates.push({ topic: 'gate', payload: cmd }),
      journey: (j) => journeys.push({ topic: 'journey', payload: j }),
      event: (topic: BusinessTopic, payload) => {
        events.push({ topic, payload });
        node.log(RED._(`${TYPE}.events.${topic}`, flat(payload)));
      },
    };
    const flush = (send: SendFn): void => {
      if (gates.length + journeys.length + events.length === 0) return;
      const out: Array<NodeMessage[] | null> = [gates.length ? gates : null, journeys.length ? journeys : null, events.length ? events : null];
      gates = [];
      journeys = [];
      events = [];
      send(out);
    };

    const problems = cfg.problems.map(t.text);
    if (problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: problems.join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
      // a redeploy into a bad config: the previous tracker's journeys cannot go on (said, as when removed)
      const dropped = takeHandover(node.id);
      if (dropped && dropped.open > 0) node.warn(RED._(`${TYPE}.droppedBadConfig`, { n: dropped.open }));
      node.on('input', (_msg: NodeMessage, _send: SendFn, done: DoneFn) => done(new Error(RED._(`${TYPE}.errors.notConfigured`))));
      node.on('close', (_removed: boolean, done: () => void) => {
        status.close();
        done();
      });
      return;
    }

    const log = { debug: (code: string, params: Record<string, string | number>) => node.debug(RED._(`${TYPE}.debug.${code}`, params)) };
    // A redeploy: the previous node's tracker goes on here when the store's layout (zones, lines, gate) is the
    // same, with the new timings; otherwise its open journeys end now (lost), sent once the flows have started.
    const prev = takeHandover(node.id);
    let tracker: JourneyTracker;
    let endedAtStart = 0;
    if (prev && sameLayout(prev.cfg, cfg.tracker)) {
      tracker = prev;
      tracker.rebind(sink, log, cfg.tracker);
      if (tracker.open > 0) node.log(RED._(`${TYPE}.carried`, { n: tracker.open }));
    } else {
      tracker = new JourneyTracker(cfg.tracker, sink, log);
      if (prev) {
        prev.rebind(sink, log);
        endedAtStart = prev.endAll();
        if (endedAtStart > 0) node.warn(RED._(`${TYPE}.endedAtStart`, { n: endedAtStart }));
      }
    }
    let onStarted: (() => void) | null = null;
    if (gates.length + journeys.length + events.length > 0) {
      // messages sent before the flows have started are lost (the nodes wired to this one may not exist yet)
      onStarted = () => {
        RED.events?.removeListener('flows:started', onStarted!);
        onStarted = null;
        flush((m) => node.send(m));
      };
      RED.events?.on('flows:started', onStarted);
    }
    const inputs = { frame: 0, event: 0, auth: 0 };
    for (const k of ['frame', 'event', 'auth'] as const) fam.inputs.attach({ ...labels, kind: k }, () => inputs[k]);
    fam.tracks.attach(labels, () => tracker.tracks);
    for (const o of OUTCOMES) fam.journeys.attach({ ...labels, outcome: o }, () => tracker.counts.journeys[o]);
    fam.gateOpens.attach(labels, () => tracker.counts.gateOpens);
    fam.unauthorized.attach(labels, () => tracker.counts.unauthorized);
    fam.lateAuths.attach(labels, () => tracker.counts.lateAuths);
    fam.auths.attach({ ...labels, result: 'matched' }, () => tracker.counts.authMatched);
    fam.auths.attach({ ...labels, result: 'unmatched' }, () => tracker.counts.authUnmatched);
    fam.stitches.attach(labels, () => tracker.counts.stitched);
    fam.evicted.attach(labels, () => tracker.counts.evicted);
    fam.badInput.attach(labels, () => badInput);

    // The status text is translated only when the count it shows changes: RED._ per message was most of the
    // flow engine's CPU under a flood of frames (i18next resolving the key every time), not the tracking.
    let shown = -1;
    const show = (): void => {
      if (inError || tracker.tracks === shown) return;
      shown = tracker.tracks;
      status.set('ok', RED._(`${TYPE}.status.tracks`, { n: shown }));
    };
    show();

    /** The door as rt-rs485-watch publishes it: read (never queued) before each decision. */
    const readDoor = (msg: NodeMessage | null): void => {
      let v: unknown;
      try {
        v = flow.get(cfg.doorKey);
      } catch {
        v = undefined;
      }
      if (v !== undefined) tracker.setDoor(v);
      if (msg && msg.door !== undefined) tracker.setDoor(msg.door);
    };

    const timer = setInterval(() => {
      readDoor(null);
      tracker.tick();
      if (onStarted === null) flush((m) => node.send(m));
      show();
    }, TICK_MS);

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      try {
        readDoor(msg);
        switch (msg.kind) {
          case 'event':
            inputs.event++;
            if (Array.isArray(msg.payload)) for (const e of msg.payload) tracker.event(e);
            else tracker.event(msg.payload);
            break;
          case 'frame':
            inputs.frame++;
            tracker.frame(msg.payload);
            break;
          case 'auth':
            inputs.auth++;
            tracker.auth(msg.payload);
            break;
          default:
            // a door-only message (msg.door, from rt-rs485-watch's output) is fine; anything else is not
            if (msg.door === undefined) throw new TrackerInputError('bad-kind', { kind: String(msg.kind).slice(0, 40) });
        }
      } catch (err) {
        flush(send);
        badInput++;
        inError = true;
        status.immediate('error', RED._(`${TYPE}.status.badInput`));
        done(t.error(err));
        return;
      }
      if (inError) {
        inError = false;
        shown = -1;
      }
      flush(send);
      show();
      done();
    });

    node.on('close', (removed: boolean, done: () => void) => {
      clearInterval(timer);
      if (onStarted) RED.events?.removeListener('flows:started', onStarted);
      if (!removed) {
        handover.set(node.id, { tracker, at: Date.now() });
      } else if (tracker.open > 0) node.log(RED._(`${TYPE}.openAtClose`, { n: tracker.open }));
      for (const k of ['frame', 'event', 'auth']) fam.inputs.detach({ ...labels, kind: k });
      fam.tracks.detach(labels);
      for (const o of OUTCOMES) fam.journeys.detach({ ...labels, outcome: o });
      fam.gateOpens.detach(labels);
      fam.unauthorized.detach(labels);
      fam.lateAuths.detach(labels);
      fam.auths.detach({ ...labels, result: 'matched' });
      fam.auths.detach({ ...labels, result: 'unmatched' });
      fam.stitches.detach(labels);
      fam.evicted.detach(labels);
      fam.badInput.detach(labels);
      status.close();
      done();
    });
  }

  RED.nodes.registerType(TYPE, JourneyTrackerNode as never);
};

/** Business-event details as log parameters (arrays joined, nested values as JSON). */
function flat(p: Record<string, unknown>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(p)) out[k] = typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string' ? v : Array.isArray(v) ? v.join(',') : JSON.stringify(v);
  return out;
}

