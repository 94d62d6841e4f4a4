// rt-rs485-port (config): one serial port shared by every rt-rs485-watch on
// that bus (mqtt-broker style register/deregister). The port is opened when
// the first user registers, reopened with bounded backoff when it fails or
// disappears (one warning per outage), and closed on redeploy or stop.
import { SerialPort } from 'serialport';

import type { Msg } from '../shared/coded';
import { needs } from '../shared/admin';
import { coreText } from '../shared/i18n';
import type { HttpRequest, HttpResponse, NodeAPI } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { FRAME_RESULTS, type FrameResult } from '../rt-rs485-watch/modbus-core';
import { type PortConfig, type PortDef, readPortConfig } from './port-config';
import { type LinkState, type LinkUser, PortLink, type Rs485PortNode } from './port-link';

const TYPE = 'rt-rs485-port';

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const fam = {
    frames: metrics.readerFamily('rtedge_rs485_frames_total', 'RS485 frames and read attempts by result (ok, bad_crc, wrong_unit, exception, garbage, timeout)', 'counter'),
    open: metrics.readerFamily('rtedge_rs485_port_open', '1 while the serial port is open', 'gauge'),
    reconnects: metrics.readerFamily('rtedge_rs485_reconnects_total', 'Times the serial port was reopened after a failure', 'counter'),
    depth: metrics.readerFamily('rtedge_rs485_queue_depth', 'Requests waiting for or using the bus', 'gauge'),
    refused: metrics.readerFamily('rtedge_rs485_requests_refused_total', 'Requests refused because the bus queue was full', 'counter'),
  };

  if (RED.httpAdmin) {
    // The editor's port list (as the serialport node offers), behind the node's read permission.
    const list = (_req: HttpRequest, res: HttpResponse): void => {
      SerialPort.list().then(
        (ports) => {
          res.set('Content-Type', 'application/json');
          res.status(200).send(JSON.stringify(ports.map((p) => ({ path: p.path, manufacturer: p.manufacturer ?? '' }))));
        },
        (err: Error) => {
          res.status(500).send(String(err?.message ?? err));
        },
      );
    };
    RED.httpAdmin.get(`/${TYPE}/ports`, needs(RED, `${TYPE}.read`), list);
  }

  function Rs485PortNode(this: Rs485PortNode, def: PortDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    node.config = readPortConfig(def);
    // worded once: the users of the port get the text (a verbatim Msg) as their link error
    const problems: Msg | null = node.config.problems.length > 0 ? node.config.problems.map(t.text).join('; ') : null;
    const link = new PortLink(node.config);
    node.link = link;
    const labels = { port: node.id };
    const counts = new Map<FrameResult, number>(FRAME_RESULTS.map((r) => [r, 0]));
    node.countFrame = (result, n = 1) => counts.set(result, (counts.get(result) ?? 0) + n);
    node.frames = () => Object.fromEntries(counts) as Record<FrameResult, number>;
    for (const r of FRAME_RESULTS) fam.frames.attach({ ...labels, result: r }, () => counts.get(r) ?? 0);
    fam.open.attach(labels, () => (link.state === 'open' ? 1 : 0));
    fam.reconnects.attach(labels, () => link.stats.reconnects);
    fam.depth.attach(labels, () => link.depth);
    fam.refused.attach(labels, () => link.stats.refused);

    // One log line per outage, one when it is over (pigpiod's `inerror` idea).
    let inOutage = false;
    const watcher: LinkUser = {
      onLink(state: LinkState, error?: Msg) {
        if (state === 'down' && !inOutage) {
          inOutage = true;
          node.warn(RED._(`${TYPE}.errors.down`, { path: node.config.path, error: error === undefined ? '' : t.text(error) }));
        } else if (state === 'open' && inOutage) {
          inOutage = false;
          node.log(RED._(`${TYPE}.errors.back`, { path: node.config.path }));
        }
      },
    };
    node.register = (u) => {
      if (problems !== null) {
        u.onLink?.('down', problems);
        return;
      }
      link.register(u);
    };
    node.deregister = (u) => link.deregister(u);
    node.request = (tx) => (problems !== null ? problems : link.request(tx));
    link.onStray = () => node.countFrame('garbage');
    if (problems !== null) node.error(RED._(`${TYPE}.errors.badConfig`, { problems }));
    // The watcher does not open the port; the first real user does.
    if (problems === null) link.observe(watcher);

    node.on('close', (_removed: boolean, done: () => void) => {
      for (const r of FRAME_RESULTS) fam.frames.detach({ ...labels, result: r });
      fam.open.detach(labels);
      fam.reconnects.detach(labels);
      fam.depth.detach(labels);
      fam.refused.detach(labels);
      link.close().then(
        () => done(),
        () => done(),
      );
    });
  }

  RED.nodes.registerType(TYPE, Rs485PortNode as never);
};
