// rt-ws-batcher: live telemetry to browsers over a WebSocket, batched (size or
// delay), serialised once per batch for every client, with a sequence and a
// bounded ring for resume, per-client byte caps (coalescing, eviction) and a
// client ES module served over HTTP. Shared mode serves the socket on
// Node-RED's own HTTP server (this thread); worker mode serves its own port
// from a worker thread (fan-out, serialisation and compression there). The
// logic is batcher-core.ts; the sockets ws-serve.ts; this file adapts.
import type { IncomingMessage, Server } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

import { clampInt } from '../shared/migrate';
import { coreText } from '../shared/i18n';
import type { DoneFn, HttpApp, HttpRequest, HttpResponse, Node, NodeAPI, NodeMessage, SendFn } from '../shared/red-types';
import { runtimeMetrics } from '../shared/registry';
import { SharedMetrics } from '../shared/shared-metrics';
import { RateLimitedWarning, ThrottledStatus } from '../shared/status';
import { BATCH_METRICS, Hub, WS_METRICS } from './batcher-core';
import { DashFeed } from './dash-core';
import type { ConsumerLink, ScaleNode, ScaleNotice } from '../rt-scale/scale-api';
import { SpscRing } from '../shared/spsc-ring';
import { nowUs, wallMs as nowMs } from '../shared/time';
import { type Backend, sharedBackend, workerBackend, WS_NICE_DEFAULT } from './backends';
import { SampleSource } from './sample-source';
import { SAMPLE_REC_WORDS, SAMPLE_RING_CAPACITY } from './ws-protocol';
import { readWsConfig, type WsDef } from './ws-config';
import { clientFile, type VerifyClient } from './ws-serve';
import { serialisePayload } from './wire';

const TYPE = 'rt-ws-batcher';
const CLIENT_DIR = join(__dirname, 'client');

interface RedWithServer extends NodeAPI {
  server?: Server;
}


/** Paths served on each HTTP server in shared mode (a second node on a path is refused). */
/** The client a message is addressed to: msg._session.id (as core websocket in sets it), or undefined (every client). */
function sessionId(msg: NodeMessage): string | undefined {
  const s = (msg as { _session?: unknown })._session;
  if (!s || typeof s !== 'object') return undefined;
  const id = (s as { id?: unknown }).id;
  return typeof id === 'string' && id !== '' ? id : undefined;
}

const pathsByServer = new WeakMap<object, Map<string, string>>();
const adminRouted = new WeakSet<object>();

function serveFile(res: HttpResponse, name: string): void {
  const body = clientFile(CLIENT_DIR, name);
  if (body === null) {
    res.status(404).send('not found');
    return;
  }
  res.set('Content-Type', 'text/javascript; charset=utf-8');
  res.set('Cache-Control', 'no-cache');
  res.status(200).send(body);
}

function removeRoute(app: HttpApp | undefined, path: string): void {
  const stack = app?._router?.stack as Array<{ route?: { path?: string } }> | undefined;
  if (!stack) return;
  for (let i = stack.length - 1; i >= 0; i--) if (stack[i].route?.path === path) stack.splice(i, 1);
}

export = function register(RED: RedWithServer): void {
  const t = coreText(RED, TYPE);
  const metrics = runtimeMetrics(RED);
  const fam = {
    clients: metrics.readerFamily('rtedge_ws_clients', 'WebSocket clients connected', 'gauge'),
    queued: metrics.readerFamily('rtedge_ws_client_queued_max_bytes', 'The most bytes queued for one client (at the last batch): bounded by the client cap plus one batch', 'gauge'),
    batches: metrics.readerFamily('rtedge_ws_batches_total', 'Batches made (each serialised once for every client)', 'counter'),
    messages: metrics.readerFamily('rtedge_ws_messages_total', 'Messages batched', 'counter'),
    frames: metrics.readerFamily('rtedge_ws_frames_total', 'Frames handed to the sockets (all clients)', 'counter'),
    bytesRaw: metrics.readerFamily('rtedge_ws_sent_bytes_total', 'Bytes of the frames handed to the sockets, before compression', 'counter'),
    bytesWire: metrics.readerFamily('rtedge_ws_wire_bytes_total', 'Bytes written to the client sockets, after compression (framing included)', 'counter'),
    skipped: metrics.readerFamily('rtedge_ws_skipped_messages_total', 'Messages a client did not get one by one (label reason: slow-client = over its byte cap, the latest per topic went in a coalesced batch; hidden = page hidden; topic-limit; handoff-full = worker hand-off full; unserialisable)', 'counter'),
    coalesced: metrics.readerFamily('rtedge_ws_coalesced_batches_total', 'Coalesced batches sent to clients over their byte cap', 'counter'),
    evictions: metrics.readerFamily('rtedge_ws_evictions_total', 'Clients closed for staying over their byte cap longer than the grace time', 'counter'),
    resumes: metrics.readerFamily('rtedge_ws_resumes_total', 'Reconnections with a resume sequence (label result: replay = from the ring, snapshot = gap + snapshot)', 'counter'),
    direct: metrics.readerFamily('rtedge_ws_direct_messages_total', 'Messages addressed to one client (msg._session.id) and sent to it', 'counter'),
    directUnknown: metrics.readerFamily('rtedge_ws_direct_unknown_client_total', 'Messages addressed to a client id that is not connected (dropped, as core websocket out does)', 'counter'),
    refused: metrics.readerFamily('rtedge_ws_refused_total', 'Upgrades refused (Origin not allowed, webSocketNodeVerifyClient)', 'counter'),
    latency: metrics.sharedHistogramFamily('rtedge_ws_latency_seconds', 'Time from a message entering the batcher to its batch being handed to every client socket'),
    // Counts observed as "microseconds" (BATCH_METRICS): exported with scale 1e6.
    batchSize: metrics.sharedHistogramFamily('rtedge_ws_batch_messages', 'Messages per batch', { scale: 1e6 }),
  };

  // The client module on the admin server too (editor pages, ui-template): {httpAdminRoot}rt-ws-batcher/<file>.js
  if (RED.httpAdmin && !adminRouted.has(RED.httpAdmin)) {
    adminRouted.add(RED.httpAdmin);
    RED.httpAdmin.get('/rt-ws-batcher/:file', (req: HttpRequest, res: HttpResponse) => serveFile(res, req.params?.file ?? ''));
  }

  function WsBatcherNode(this: Node, def: WsDef): void {
    RED.nodes.createNode(this, def as never);
    const node = this;
    const cfg = readWsConfig(def);
    const status = new ThrottledStatus(node);
    const labels = { node: node.id };
    const shared = SharedMetrics.create(WS_METRICS);
    const batchM = SharedMetrics.create(BATCH_METRICS);
    let unserialisable = 0;
    let handoffFull = 0;
    let closing = false;
    let backend: Backend | null = null;
    let cleanup: Array<() => void> = [];
    const closers: Array<() => Promise<void>> = [];
    const dropWarn = new RateLimitedWarning((x) => node.warn(x));
    let clientCount = 0;
    let listening = false;
    let badShown = false;

    const showClients = (): void => {
      if (closing) return;
      status.set('ok', RED._(`${TYPE}.status.clients`, { n: clientCount }));
    };

    /** The series this node attached (detached on close; no prom-client internals). */
    const attached: Array<{ f: { detach(l: Record<string, string>): void }; labels: Record<string, string> }> = [];
    const attach = <R>(f: { attach(l: Record<string, string>, r: R): void; detach(l: Record<string, string>): void }, l: Record<string, string>, r: R): void => {
      f.attach(l, r);
      attached.push({ f, labels: l });
    };
    attach(fam.clients, labels, () => shared.gauge('clients'));
    attach(fam.queued, labels, () => shared.gauge('queued_max'));
    attach(fam.batches, labels, () => shared.counter('batches'));
    attach(fam.messages, labels, () => shared.counter('messages'));
    attach(fam.frames, labels, () => shared.counter('frames'));
    attach(fam.bytesRaw, labels, () => shared.counter('bytes_raw'));
    attach(fam.bytesWire, labels, () => shared.counter('bytes_wire'));
    attach(fam.skipped, { ...labels, reason: 'slow-client' }, () => shared.counter('skipped_slow'));
    attach(fam.skipped, { ...labels, reason: 'hidden' }, () => shared.counter('skipped_hidden'));
    attach(fam.skipped, { ...labels, reason: 'topic-limit' }, () => shared.counter('skipped_topics'));
    attach(fam.skipped, { ...labels, reason: 'handoff-full' }, () => handoffFull);
    attach(fam.skipped, { ...labels, reason: 'unserialisable' }, () => unserialisable);
    attach(fam.coalesced, labels, () => shared.counter('coalesced_batches'));
    attach(fam.evictions, labels, () => shared.counter('evictions'));
    attach(fam.resumes, { ...labels, result: 'replay' }, () => shared.counter('resumes_replay'));
    attach(fam.resumes, { ...labels, result: 'snapshot' }, () => shared.counter('resumes_snapshot'));
    attach(fam.direct, labels, () => shared.counter('direct'));
    attach(fam.directUnknown, labels, () => shared.counter('skipped_no_client'));
    attach(fam.refused, labels, () => shared.counter('refused'));
    attach(fam.latency, labels, shared.histogram('latency'));
    attach(fam.batchSize, labels, batchM.histogram('size'));

    // Dashboard mode: batched point arrays at a bounded rate on the output.
    const dash = cfg.dashRate > 0 ? new DashFeed(cfg.dashPoints) : null;
    if (dash && cfg.mode === 'shared') {
      const every = Math.max(50, Math.round(1000 / cfg.dashRate));
      const timer = setInterval(() => {
        const pts = dash.take();
        if (pts) node.send({ topic: 'chart', payload: pts });
      }, every);
      cleanup.push(() => clearInterval(timer));
    }

    const fail = (text: string): void => {
      node.error(text);
      status.immediate('error', RED._(`${TYPE}.status.badConfig`));
    };

    // Direct source: a scale's samples go from its HAL worker into a shared ring that the hub's thread drains.
    const scale = cfg.scale ? (RED.nodes.getNode(cfg.scale) as ScaleNode | null) : null;
    const samples = scale ? SpscRing.create(SAMPLE_RING_CAPACITY, SAMPLE_REC_WORDS) : null;
    if (cfg.scale && !scale) cfg.problems.push({ code: 'no-scale' });
    if (scale && samples && cfg.problems.length === 0) {
      let link: ConsumerLink<unknown> | null = null;
      const detach = scale.attach({
        onNotice: (n: ScaleNotice) => {
          if (n.t === 'ready' && !link && !closing) {
            link = scale.attachConsumer<unknown, unknown>({
              module: join(__dirname, 'ws-batcher.consumer.js'),
              init: { ring: samples.sab },
              onEvent: () => undefined,
              onError: (err) => {
                const text = RED._(`${TYPE}.errors.scale`, { error: t.errorText(err) });
                node.error(text, { topic: 'error', payload: { error: text } }); // a message, so Catch nodes see it
                status.immediate('error', RED._(`${TYPE}.status.error`));
              },
            });
          } else if (n.t === 'error') {
            const text = RED._(`${TYPE}.errors.scale`, { error: n.message });
            node.error(text, { topic: 'error', payload: { error: text } });
            status.immediate('error', RED._(`${TYPE}.status.error`));
          }
        },
      });
      closers.push(async () => {
        if (link) await link.close(2000).catch(() => undefined);
        await detach().catch(() => undefined);
      });
    }

    const root = typeof RED.settings.httpNodeRoot === 'string' ? RED.settings.httpNodeRoot.replace(/\/+$/, '') : '';
    if (cfg.problems.length > 0) {
      fail(RED._(`${TYPE}.errors.badConfig`, { problems: cfg.problems.map(t.text).join('; ') }));
    } else if (cfg.mode === 'shared') {
      const server = RED.server;
      const fullPath = root + cfg.path;
      let paths = server ? pathsByServer.get(server) : undefined;
      if (server && !paths) pathsByServer.set(server, (paths = new Map()));
      if (!server) fail(RED._(`${TYPE}.errors.noServer`));
      else if (paths!.has(fullPath) && paths!.get(fullPath) !== node.id) fail(RED._(`${TYPE}.errors.duplicatePath`, { path: fullPath }));
      else {
        paths!.set(fullPath, node.id);
        const hub = new Hub(cfg.hub, {
          nowMs,
          nowUs,
          setTimer: (fn, ms) => setTimeout(fn, ms),
          clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
          metrics: shared,
          batchSize: batchM.histogram('size'),
          onBatch: dash ? (b) => dash.add(b.items) : undefined,
          onClients: (n) => {
            clientCount = n;
            showClients();
          },
        });
        if (samples) {
          const src = new SampleSource(samples.sab, cfg.scaleTopic, nowMs, nowUs);
          const drain = setInterval(() => src.drain((it) => hub.enqueue(it)), Math.max(1, Math.min(cfg.hub.delayMs, 16)));
          cleanup.push(() => clearInterval(drain));
        }
        backend = sharedBackend(hub, {
          path: fullPath,
          origins: cfg.origins,
          deflate: cfg.deflate,
          verifyClient: RED.settings.webSocketNodeVerifyClient as VerifyClient | undefined,
          onRefused: () => shared.inc('refused'),
        });
        const srv = backend.socketServer!;
        const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
          srv.handleUpgrade(req, socket, head); // another path: left to the other listeners (Node-RED's editor, websocket nodes)
        };
        server.on('upgrade', onUpgrade);
        const routePath = cfg.path + '/:file';
        RED.httpNode?.get(routePath, (req: HttpRequest, res: HttpResponse) => serveFile(res, req.params?.file ?? ''));
        cleanup.push(() => {
          server.removeListener('upgrade', onUpgrade);
          removeRoute(RED.httpNode, routePath);
          if (paths!.get(fullPath) === node.id) paths!.delete(fullPath);
        });
        listening = true;
        node.log(RED._(`${TYPE}.listening`, { url: fullPath }));
        showClients();
      }
    } else {
      status.immediate('connecting', RED._(`${TYPE}.status.starting`));
      backend = workerBackend({
        RED,
        node,
        cfg,
        metrics: shared,
        batchMetrics: batchM,
        clientDir: CLIENT_DIR,
        text: t,
        nice: clampInt(RED.settings.rtEdgeWsNice, -20, 0, WS_NICE_DEFAULT),
        onPriority: (nice, asked) => {
          if (nice !== null) node.log(RED._(`${TYPE}.priority`, { nice }));
          // asked for in settings: a warning; the default: a log line (the node works either way)
          else if (RED.settings.rtEdgeWsNice !== undefined) node.warn(RED._(`${TYPE}.priorityDenied`, { nice: asked }));
          else node.log(RED._(`${TYPE}.priorityDenied`, { nice: asked }));
        },
        onListening: (port) => {
          listening = true;
          node.log(RED._(`${TYPE}.listeningPort`, { port, path: cfg.path }));
          showClients();
        },
        onClients: (n) => {
          clientCount = n;
          showClients();
        },
        samples: samples ? { ring: samples.sab, topic: cfg.scaleTopic } : undefined,
        onChart: dash ? (points) => node.send({ topic: 'chart', payload: points }) : undefined,
        onError: (text) => {
          node.error(text, { topic: 'error', payload: { error: text } });
          status.immediate('error', RED._(`${TYPE}.status.error`));
        },
        onHandoffFull: () => {
          handoffFull++;
          dropWarn.hit((n) => RED._(`${TYPE}.errors.handoffFull`, { n }));
        },
      });
    }

    node.on('input', (msg: NodeMessage, _send: SendFn, done: DoneFn) => {
      if (!backend) {
        done(new Error(RED._(`${TYPE}.errors.notConfigured`)));
        return;
      }
      let ser: { json: string; num: number };
      try {
        ser = serialisePayload(msg.payload);
      } catch (err) {
        unserialisable++;
        badShown = true;
        status.immediate('error', RED._(`${TYPE}.status.badPayload`));
        done(new Error(RED._(`${TYPE}.errors.unserialisable`, { error: err instanceof Error ? err.message : String(err) })));
        return;
      }
      const topic = typeof msg.topic === 'string' ? msg.topic : msg.topic === undefined || msg.topic === null ? '' : String(msg.topic);
      backend.enqueue({ topic, json: ser.json, num: ser.num, ts: nowMs(), enqUs: nowUs() }, cfg.replies === 'session' ? sessionId(msg) : undefined);
      if (badShown && listening) {
        // back to the clients count after a bad payload (not on every message: this is the hot path)
        badShown = false;
        showClients();
      }
      done();
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      closing = true;
      for (const c of cleanup) c();
      cleanup = [];
      const finish = (): void => {
        for (const a of attached) a.f.detach(a.labels);
        attached.length = 0;
        status.close();
        done();
      };
      const b = backend;
      Promise.all(closers.map((c) => c()))
        .then(() => (b ? b.close() : undefined))
        .then(finish, finish);
    });
  }

  RED.nodes.registerType(TYPE, WsBatcherNode as never);
};
