// rt-rs485-watch: the door state from an RS485 bus as a watch value. The
// latest value ({state, since, ts, reason?}) is kept in flow context under a
// configurable key, returned as msg.door on every input message, and sent on
// every change (never coalesced: each observed change is one message, in
// order). Runs on the main thread: it only does serial I/O through the shared
// rt-rs485-port, whose queue keeps requests on the bus one at a time.
import { isCoded } from '../shared/coded';
import { coreText } from '../shared/i18n';
import type { DoneFn, Node, NodeAPI, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { RateLimitedWarning, ThrottledStatus } from '../shared/status';
import type { LinkState, Rs485PortNode } from '../rt-rs485-port/port-link';
import { type Bus, PassiveReader, PollReader, type ReaderSink } from './door-readers';
import type { FrameResult } from './modbus-core';
import { readWatchConfig, type WatchDef } from './watch-config';
import { type DoorState, type DoorValue, DoorWatch } from './watch-core';

const TYPE = 'rt-rs485-watch';
const STATE_GAUGE: Record<DoorState, number> = { open: 1, closed: 0, unknown: -1 };

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  /** The door as flows see it: the reason worded, and its stable code for flows to switch on. */
  const published = (v: DoorValue): DoorValue<string> & { reason_code?: string } => {
    const { reason, ...rest } = v;
    if (reason === undefined) return rest;
    return isCoded(reason) ? { ...rest, reason: t.text(reason), reason_code: reason.code } : { ...rest, reason: t.text(reason) };
  };
  const metrics = runtimeMetrics(RED);
  const fam = {
    state: metrics.readerFamily('rtedge_rs485_door_state', 'Door state: 1 open, 0 closed, -1 unknown', 'gauge'),
    changes: metrics.readerFamily('rtedge_rs485_door_changes_total', 'Door state changes emitted', 'counter'),
  };

  function Rs485WatchNode(this: Node, def: WatchDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = readWatchConfig(def);
    const status = new ThrottledStatus(node);
    const port = (typeof def.port === 'string' && def.port ? RED.nodes.getNode(def.port) : null) as Rs485PortNode | null;
    const watch = new DoorWatch(Date.now());
    const labels = { node: node.id };
    fam.state.attach(labels, () => STATE_GAUGE[watch.value.state]);
    fam.changes.attach(labels, () => watch.changes);
    const flow = node.context().flow;
    // one warning per unknown episode, and at most one a second if the state flaps
    const unknownWarn = new RateLimitedWarning((t) => node.warn(t));
    let link: LinkState = 'connecting';
    let closed = false;

    const publish = (v: DoorValue<string>): void => {
      try {
        flow.set(cfg.key, v);
      } catch (err) {
        node.error(err);
      }
    };
    const show = (): void => {
      const v = watch.value;
      if (link === 'connecting') status.set('connecting', RED._(`${TYPE}.status.connecting`));
      else if (v.state === 'unknown') status.set('error', v.reason !== undefined ? t.text(v.reason) : RED._(`${TYPE}.status.unknown`));
      else status.set('ok', RED._(`${TYPE}.status.${v.state}`));
    };
    publish(published(watch.value));

    const sink: ReaderSink = {
      observe(state, reason) {
        if (closed) return;
        const before = watch.value;
        const changed = watch.observe(state, Date.now(), reason);
        const after = changed ?? watch.value;
        const v = published(after);
        publish(v);
        // A bus that has never answered (wrong unit id, wrong baud) stays unknown
        // from the start: its first failure reason replaces "not read yet" without a
        // change of state, and is an outage like any other (status and one warning).
        const firstFailure = !changed && after.state === 'unknown' && isCoded(before.reason) && before.reason.code === 'not-read' && !(isCoded(after.reason) && after.reason.code === 'not-read');
        if (changed) {
          // One message per change, never coalesced.
          node.send({ topic: cfg.key, payload: v, door: { ...v } });
        }
        if (changed || firstFailure) {
          const why = after.reason;
          if (after.state === 'unknown' && !(isCoded(why) && why.code === 'port-unavailable')) {
            unknownWarn.hit((n) => RED._(`${TYPE}.errors.unknown`, { reason: v.reason ?? '', n }));
          }
          show();
        } else if (after.state === 'unknown' && before.reason !== after.reason) {
          show(); // still unknown, for a new reason: the status says the current one
        }
      },
      frame(result: FrameResult, n?: number) {
        port?.countFrame(result, n);
      },
      link(state) {
        link = state;
        show();
      },
    };

    let reader: PollReader | PassiveReader | null = null;
    const problems = !port ? [RED._(`${TYPE}.errors.noPort`)] : cfg.problems.map(t.text);
    if (problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: problems.join('; ') }));
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    } else {
      const bus: Bus = { register: (u) => port!.register(u), deregister: (u) => port!.deregister(u), request: (tx) => port!.request(tx) };
      reader =
        cfg.mode === 'poll'
          ? new PollReader(
              bus,
              {
                request: { unit: cfg.unit, fn: cfg.fn, address: cfg.address, count: 1 },
                intervalMs: cfg.intervalMs,
                timeoutMs: cfg.timeoutMs,
                stallMs: cfg.stallMs,
                openValue: cfg.openValue,
                closedValue: cfg.closedValue,
              },
              sink,
            )
          : new PassiveReader(bus, { framer: cfg.framer, mapping: cfg.mapping!, silenceMs: cfg.silenceMs }, sink);
      reader.start();
      show();
    }

    node.on('input', (msg: NodeMessage, send: SendFn, done: DoneFn) => {
      if (msg.refresh === true && reader instanceof PollReader) reader.pollNow();
      msg.door = published(watch.value);
      send(msg);
      done();
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closed = true;
      reader?.stop();
      reader = null;
      fam.state.detach(labels);
      fam.changes.detach(labels);
      status.close();
      done();
    });
  }

  RED.nodes.registerType(TYPE, Rs485WatchNode as never);
};
