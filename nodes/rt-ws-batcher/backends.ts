// Where the hub runs. Shared mode: here, on Node-RED's thread, with the socket
// on Node-RED's HTTP server. Worker mode: in the batcher's own worker thread,
// serving its own port; the flow engine hands messages over in columns, one
// postMessage per hand-off (at most every HANDOFF_MS or batchSize messages).
import { join } from 'node:path';

import type { CoreText } from '../shared/i18n';
import type { Node, NodeAPI } from '../shared/red-types';
import type { SharedMetrics } from '../shared/shared-metrics';
import { WorkerLease } from '../shared/worker-host';
import type { Hub } from './batcher-core';
import type { ChartPoint } from './dash-core';
import type { WsConfig } from './ws-config';
import type { ItemsCmd, WsCmd, WsEvent, WsWorkerInit } from './ws-protocol';
import { BatcherSocketServer, type ServeOptions } from './ws-serve';
import type { Item } from './wire';

export interface Backend {
  /** One message for every client, or (`to`: a client id) for that client only. */
  enqueue(it: Item, to?: string): void;
  close(): Promise<void>;
  /** Shared mode: the socket server (its upgrade handler is wired to Node-RED's server). */
  socketServer?: BatcherSocketServer;
}

export function sharedBackend(hub: Hub, o: ServeOptions): Backend {
  const srv = new BatcherSocketServer(hub, o);
  return {
    socketServer: srv,
    enqueue: (it, to) => (to ? hub.enqueueTo(to, it) : hub.enqueue(it)),
    close: () => srv.close(1000),
  };
}

/**
 * Niceness the worker thread asks for by default (setting rtEdgeWsNice, -20..0;
 * 0 leaves it alone). Below the flow engine's 0, above nothing time-critical
 * (the HAL and gate threads ask -10). On a loaded 2-core host it took the
 * 10k msgs/s x 50 clients delivery p99 from 215-410 ms to 63-68 ms (bench ws-batcher --nice).
 */
export const WS_NICE_DEFAULT = -5;
/** The worker's young generation (MB); see workerBackend. */
export const WORKER_YOUNG_GEN_MB = 4;
/** Longest a message waits on the flow engine's side before it is handed to the worker (ms). */
export const HANDOFF_MS = 2;
/** Messages held on the flow engine's side while the worker (re)starts; more are dropped and counted. */
export const HANDOFF_LIMIT = 20_000;

export interface WorkerBackendOptions {
  RED: NodeAPI;
  node: Node;
  cfg: WsConfig;
  metrics: SharedMetrics;
  batchMetrics: SharedMetrics;
  clientDir: string;
  text: CoreText;
  samples?: { ring: SharedArrayBuffer; topic: string };
  /** Niceness for the worker thread (-20..0; 0 = leave it). */
  nice: number;
  onPriority?(nice: number | null, asked: number): void;
  onListening(port: number): void;
  onClients(n: number): void;
  onChart?(points: ChartPoint[]): void;
  onError(text: string): void;
  onHandoffFull(): void;
}

export function workerBackend(o: WorkerBackendOptions): Backend {
  const { cfg, RED } = o;
  const TYPE = 'rt-ws-batcher';
  const init: WsWorkerInit = {
    host: cfg.host,
    port: cfg.port,
    path: cfg.path,
    origins: cfg.origins,
    hub: cfg.hub,
    deflate: cfg.deflate,
    metrics: o.metrics.sab,
    batchMetrics: o.batchMetrics.sab,
    clientDir: o.clientDir,
    samples: o.samples,
    dashRate: cfg.dashRate,
    dashPoints: cfg.dashPoints,
    nice: o.nice,
  };
  let cols = fresh();
  let timer: NodeJS.Timeout | null = null;
  const lease = new WorkerLease<WsEvent, WsCmd>({
    script: join(__dirname, 'batcher.worker.js'),
    shared: false,
    // A small young generation: the hub's garbage (one batch string per flush,
    // ws frames) is collected sooner instead of growing the process by tens of
    // MB under load (bench ws-batcher: RSS growth with and without a stalled client).
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GEN_MB },
    init,
    onEvent: (ev) => {
      if (ev.t === 'listening') o.onListening(ev.port);
      else if (ev.t === 'clients') o.onClients(ev.n);
      else if (ev.t === 'chart') o.onChart?.(ev.points);
      else if (ev.t === 'priority') o.onPriority?.(ev.nice, ev.asked);
      else if (ev.t === 'failed') o.onError(RED._(`${TYPE}.errors.worker`, { error: o.text.text(ev.error) }));
    },
    onError: (err) => o.onError(RED._(`${TYPE}.errors.worker`, { error: o.text.errorText(err) })),
    onReady: () => post(),
  });
  lease.start();

  function fresh(): ItemsCmd {
    return { t: 'items', topic: [], json: [], num: [], ts: [], enqUs: [], to: [] };
  }
  function post(): void {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (cols.topic.length === 0) return;
    if (lease.post(cols)) cols = fresh();
  }
  return {
    enqueue(it, to) {
      if (cols.topic.length >= HANDOFF_LIMIT) {
        o.onHandoffFull();
        return;
      }
      cols.topic.push(it.topic);
      cols.json.push(it.json);
      cols.num.push(it.num);
      cols.ts.push(it.ts);
      cols.enqUs.push(it.enqUs);
      cols.to.push(to ?? '');
      if (cols.topic.length >= cfg.hub.batchSize) post();
      else if (!timer) timer = setTimeout(post, HANDOFF_MS);
    },
    async close() {
      post();
      if (timer) clearTimeout(timer);
      timer = null;
      await lease.close(3000);
    },
  };
}
