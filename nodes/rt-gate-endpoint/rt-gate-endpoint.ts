// rt-gate-endpoint (config): the gate controller's TCP address, command
// template, acknowledgement, timeout and reconnect backoff. It holds config
// only; the rt-gate-command nodes that use it run the link in a worker thread
// keyed by this endpoint.
import type { NodeAPI } from '../shared/red-types';
import { type EndpointDef, type EndpointNode, readEndpoint } from './endpoint-config';

export = function register(RED: NodeAPI): void {
  function GateEndpointNode(this: EndpointNode, def: EndpointDef): void {
    RED.nodes.createNode(this, def);
    this.config = readEndpoint(def);
  }
  RED.nodes.registerType('rt-gate-endpoint', GateEndpointNode as never);
};
