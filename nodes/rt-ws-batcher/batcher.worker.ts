// Worker entry of rt-ws-batcher in worker mode: its own HTTP server and port
// (the client module and the socket), the hub (batching, serialisation, ring,
// per-client caps), fan-out and compression, and the direct source's samples,
// all in this thread: the live weight keeps flowing while the flow engine is
// blocked. One instance per node (its own thread).
import { createServer } from 'node:http';

import { SharedMetrics } from '../shared/shared-metrics';
import { raiseThreadPriority } from '../shared/thread-priority';
import { serveInstances } from '../shared/worker-runtime';
import { nowUs, wallMs as nowMs } from '../shared/time';
import { BATCH_METRICS, Hub, WS_METRICS } from './batcher-core';
import { DashFeed } from './dash-core';
import { SampleSource } from './sample-source';
import type { WsCmd, WsEvent, WsWorkerInit } from './ws-protocol';
import { BatcherSocketServer, clientFile } from './ws-serve';


serveInstances<WsWorkerInit, WsCmd, WsEvent>(async (init, ctx) => {
  if (init.nice !== 0) ctx.emit({ t: 'priority', nice: raiseThreadPriority(init.nice), asked: init.nice });
  const metrics = SharedMetrics.attach(WS_METRICS, init.metrics);
  const batch = SharedMetrics.attach(BATCH_METRICS, init.batchMetrics);
  const dash = init.dashRate > 0 ? new DashFeed(init.dashPoints) : null;
  const hub = new Hub(init.hub, {
    nowMs,
    nowUs,
    setTimer: (fn, ms) => setTimeout(fn, ms),
    clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
    metrics,
    batchSize: batch.histogram('size'),
    onBatch: dash ? (b) => dash.add(b.items) : undefined,
    onClients: (n) => ctx.emit({ t: 'clients', n }),
  });
  const srv = new BatcherSocketServer(hub, {
    path: init.path,
    origins: init.origins,
    deflate: init.deflate,
    onRefused: () => metrics.inc('refused'),
  });
  const prefix = init.path + '/';
  const http = createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    const body = req.method === 'GET' && p.startsWith(prefix) ? clientFile(init.clientDir, p.slice(prefix.length)) : null;
    if (body === null) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-cache', 'Access-Control-Allow-Origin': '*' }).end(body);
  });
  http.on('upgrade', (req, socket, head) => {
    if (!srv.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(init.port, init.host || undefined, () => {
      http.off('error', reject);
      resolve();
    });
  });
  const addr = http.address();
  ctx.emit({ t: 'listening', port: typeof addr === 'object' && addr ? addr.port : init.port });

  const timers: NodeJS.Timeout[] = [];
  if (init.samples) {
    const src = new SampleSource(init.samples.ring, init.samples.topic, nowMs, nowUs);
    timers.push(setInterval(() => src.drain((it) => hub.enqueue(it)), Math.max(1, Math.min(init.hub.delayMs, 16))));
  }
  if (dash) {
    timers.push(
      setInterval(() => {
        const points = dash.take();
        if (points) ctx.emit({ t: 'chart', points });
      }, Math.max(50, Math.round(1000 / init.dashRate))),
    );
  }

  return {
    onCommand(cmd) {
      if (cmd.t === 'items') {
        const n = cmd.topic.length;
        for (let i = 0; i < n; i++) {
          const it = { topic: cmd.topic[i], json: cmd.json[i], num: cmd.num[i] ?? NaN, ts: cmd.ts[i], enqUs: cmd.enqUs[i] };
          const to = cmd.to[i];
          if (to) hub.enqueueTo(to, it);
          else hub.enqueue(it);
        }
      }
      return undefined;
    },
    async close() {
      for (const t of timers) clearInterval(t);
      await srv.close(1000);
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections?.();
      await closed;
    },
  };
});
