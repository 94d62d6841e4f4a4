// rt-mqtt-broker (config): where the MQTT clients of rt-mqtt-ingress (and the
// MQTT outbox of rt-journey-egress) connect. With no URL it runs the embedded
// broker (aedes) in the MQTT worker thread, on its port, for as long as this
// config node is deployed; with a URL it holds settings only. The ingress
// nodes that use it run their clients in the same worker thread (key
// workerKey), never on the flow engine's thread.
import { join } from 'node:path';

import { coreText } from '../shared/i18n';
import type { NodeAPI } from '../shared/red-types';
import { WorkerLease } from '../shared/worker-host';
import type { IngressCmd, IngressEvent, MqttInit } from '../rt-mqtt-ingress/ingress-protocol';
import { type BrokerDef, type BrokerNode, readBroker } from './broker-config';

const TYPE = 'rt-mqtt-broker';

export = function register(RED: NodeAPI): void {
  const t = coreText(RED, TYPE);
  function MqttBrokerNode(this: BrokerNode, def: BrokerDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    node.config = readBroker(def);
    node.workerKey = `rt-mqtt:${node.id}`;
    let lease: WorkerLease<IngressEvent, IngressCmd> | null = null;
    if (node.config.problems.length > 0) {
      node.error(RED._(`${TYPE}.errors.badConfig`, { problems: node.config.problems.map(t.text).join('; ') }));
    } else if (node.config.embedded) {
      const c = node.config;
      const init: MqttInit = { role: 'broker', host: c.bind, port: c.port };
      lease = new WorkerLease<IngressEvent, IngressCmd>({
        script: join(__dirname, '..', 'rt-mqtt-ingress', 'mqtt.worker.js'),
        key: node.workerKey,
        init,
        onEvent: (ev) => {
          if (ev.t !== 'broker') return;
          if (ev.state === 'listening') node.log(RED._(`${TYPE}.embeddedUp`, { host: c.bind, port: ev.port }));
          else node.error(RED._(`${TYPE}.errors.embeddedFailed`, { host: c.bind, port: ev.port, error: ev.error ?? '' }));
        },
        onError: (err) => node.error(RED._(`${TYPE}.errors.worker`, { error: t.errorText(err) })),
      });
      lease.start();
    }
    node.on('close', (_removed: boolean, done: () => void) => {
      if (!lease) return done();
      lease.close(3000).then(
        () => done(),
        () => done(),
      );
    });
  }
  RED.nodes.registerType(TYPE, MqttBrokerNode as never, {
    credentials: { user: { type: 'text' }, password: { type: 'password' } },
  } as never);
};
