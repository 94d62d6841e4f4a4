// Worker entry of rt-mqtt-ingress and rt-mqtt-broker: I/O only.
//  - role 'client': the MQTT client (mqtt package) with its subscriptions,
//    and/or the TCP listener for newline-delimited authorisations; every
//    payload goes through an IngressPipe (parse, gaps, try-send).
//  - role 'broker': the embedded broker (aedes) on a TCP port.
// Ingress nodes on one broker config and that config's embedded broker share
// this thread. Nothing here waits for the flow engine: a blocked main thread
// neither delays the keep-alives nor the acknowledgements.
import { createServer, type Server, type Socket } from 'node:net';

import { connect, type IClientOptions, type MqttClient } from 'mqtt';

import { reconnectDelay } from '../shared/backoff';
import { SharedMetrics } from '../shared/shared-metrics';
import { mqttClientOptions, readTlsFiles } from '../rt-mqtt-broker/broker-config';
import { type InstanceContext, serveInstances } from '../shared/worker-runtime';
import { wallMs as nowMs } from '../shared/time';
import { CreditGate } from './ingress-core';
import { IngressPipe } from './ingress-pipe';
import { topicMatches } from './topic';
import { type BrokerInit, type ClientInit, type IngressCmd, type IngressEvent, ingressMetricSpec, type MqttInit } from './ingress-protocol';


function startClient(init: ClientInit, ctx: InstanceContext<IngressEvent>) {
  const m = SharedMetrics.attach(ingressMetricSpec(init.sources.length), init.metrics);
  const gates = CreditGate.perSource(init.ctl, init.sources.length, init.limits);
  const post = (ev: IngressEvent): void => ctx.emit(ev);
  const pipe = new IngressPipe(init.sources, gates, m, init.maxBytes, {
    post,
    // After the socket read being parsed (mqtt.js parses one read's packets in a process.nextTick chain, and
    // microtasks run after it), not on the next turn of the loop: a turn can hold up to 32 reads of 64 KiB
    // (libuv), i.e. hundreds of milliseconds of frames under a flood.
    defer: (fn) => queueMicrotask(fn),
    now: nowMs,
    later: (fn, ms) => {
      const h = setTimeout(fn, ms);
      return { cancel: () => clearTimeout(h) };
    },
  });
  let closing = false;
  let client: MqttClient | null = null;
  let timer: NodeJS.Timeout | null = null;
  let attempt = 0;
  let server: Server | null = null;
  const sockets = new Set<Socket>();

  if (init.mqtt) {
    const s = init.mqtt;
    const subs = init.subs;
    const exact = new Map<string, number>();
    for (const sub of subs) if (!/[+#]/.test(sub.topic) && !exact.has(sub.topic)) exact.set(sub.topic, sub.source);
    const sourceOf = (topic: string): number => {
      const e = exact.get(topic);
      if (e !== undefined) return e;
      for (const sub of subs) if (topicMatches(sub.topic, topic)) return sub.source;
      return -1;
    };
    // our own backoff below (reconnectPeriod 0); we subscribe on every connect
    const opts: IClientOptions = mqttClientOptions(s, { resubscribe: false });
    const readTls = (): void => readTlsFiles(s, opts);
    let wasConnected = false;
    const schedule = (): void => {
      if (closing || timer) return;
      const delay = reconnectDelay(attempt++, s.backoffMinMs, s.backoffMaxMs);
      timer = setTimeout(() => {
        timer = null;
        if (closing || !client) return;
        post({ t: 'link', state: 'connecting' });
        try {
          readTls();
          Object.assign(client.options, { ca: opts.ca, cert: opts.cert, key: opts.key });
          client.reconnect();
        } catch (err) {
          post({ t: 'link', state: 'down', error: (err as Error).message });
          schedule();
        }
      }, delay);
    };
    // Never a connection without the TLS files the config names (it would trust the system CAs instead):
    // when one cannot be read, the first attempt waits for the backoff, which reads them again.
    let tlsRead = true;
    try {
      readTls();
    } catch (err) {
      tlsRead = false;
      post({ t: 'link', state: 'down', error: (err as Error).message });
    }
    const c = connect(s.url, { ...opts, manualConnect: true });
    client = c;
    if (tlsRead) {
      post({ t: 'link', state: 'connecting' });
      c.connect();
    } else schedule();
    c.on('connect', () => {
      attempt = 0;
      wasConnected = true;
      m.inc('connects');
      // "connected" (gauge, status) once the broker has granted every subscription: from then on nothing is missed.
      const map: Record<string, { qos: 0 | 1 | 2 }> = {};
      for (const sub of subs) map[sub.topic] = { qos: Math.max(sub.qos, map[sub.topic]?.qos ?? 0) as 0 | 1 | 2 };
      c.subscribe(map, (err, granted) => {
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (err || refused.length > 0) {
          // not connected for this node's purpose: drop the link, and the close handler reconnects with
          // backoff (and subscribes again), instead of staying connected without the subscriptions
          lastError = err ? err.message : `subscription refused: ${refused.join(', ')}`;
          c.end(true);
          return;
        }
        if (!c.connected) return;
        m.setGauge('connected', 1);
        post({ t: 'link', state: 'connected' });
      });
    });
    c.on('message', (topic, payload) => {
      const src = sourceOf(topic);
      if (src < 0) return;
      pipe.receive(src, topic, payload.length > init.maxBytes * 4 ? payload.subarray(0, init.maxBytes * 4 + 1).toString('utf8') : payload.toString('utf8'));
    });
    let lastError = '';
    c.on('error', (err) => {
      lastError = err.message;
    });
    c.on('close', () => {
      if (wasConnected) {
        m.inc('disconnects');
        wasConnected = false;
      }
      m.setGauge('connected', 0);
      if (closing) return;
      post({ t: 'link', state: 'down', error: lastError || undefined });
      lastError = '';
      schedule();
    });
  }

  if (init.tcp) {
    const tcp = init.tcp;
    const topic = `tcp:${tcp.name}`;
    const srv = createServer((sock) => {
      sockets.add(sock);
      m.inc('tcp_connections');
      m.setGauge('tcp_clients', sockets.size);
      sock.setEncoding('utf8');
      sock.setNoDelay(true);
      let buf = '';
      let skipping = false;
      sock.on('data', (chunk: string) => {
        let start = 0;
        for (;;) {
          const nl = chunk.indexOf('\n', start);
          if (nl < 0) break;
          const part = chunk.slice(start, nl);
          start = nl + 1;
          if (skipping) {
            skipping = false;
            buf = '';
            continue;
          }
          const line = (buf + part).replace(/\r$/, '');
          buf = '';
          if (line.trim() !== '') pipe.receive(tcp.source, topic, line);
        }
        if (!skipping) {
          buf += chunk.slice(start);
          if (buf.length > init.maxBytes) {
            // A line longer than allowed: counted and reported once, the rest of it skipped.
            pipe.receive(tcp.source, topic, buf);
            buf = '';
            skipping = true;
          }
        }
      });
      const gone = (): void => {
        sockets.delete(sock);
        m.setGauge('tcp_clients', sockets.size);
      };
      sock.on('close', gone);
      sock.on('error', () => undefined);
    });
    server = srv;
    srv.on('error', (err) => post({ t: 'tcp', state: 'error', port: tcp.port, error: err.message }));
    srv.listen(tcp.port, tcp.host, () => {
      const a = srv.address();
      post({ t: 'tcp', state: 'listening', port: typeof a === 'object' && a ? a.port : tcp.port });
    });
  }

  return {
    onCommand(_cmd: IngressCmd): unknown {
      return undefined;
    },
    async close(): Promise<void> {
      closing = true;
      if (timer) clearTimeout(timer);
      timer = null;
      pipe.close();
      const waits: Promise<void>[] = [];
      if (client) {
        const c = client;
        waits.push(new Promise<void>((r) => c.end(false, {}, () => r())));
        // a client stuck connecting to a dead broker: force it after 1 s
        waits[waits.length - 1] = Promise.race([waits[waits.length - 1], new Promise<void>((r) => setTimeout(() => c.end(true, {}, () => r()), 1000).unref())]);
      }
      if (server) {
        const srv = server;
        for (const s of sockets) s.destroy();
        waits.push(new Promise<void>((r) => srv.close(() => r())));
      }
      await Promise.all(waits);
      m.setGauge('connected', 0);
    },
  };
}

const importAedes = () => import('aedes');
type AedesModule = Awaited<ReturnType<typeof importAedes>>;

/**
 * aedes is an ES module, loaded on demand in this thread only. Synchronously where Node can require() an ES
 * module (20.19+, 22.12+): an asynchronous import reads the files through file handles, and a worker
 * terminated in the middle of it (a quick redeploy) leaves them open in the process for good.
 */
function loadAedes(): Promise<AedesModule> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return Promise.resolve(require('aedes') as AedesModule);
  } catch {
    return importAedes();
  }
}

async function startBroker(init: BrokerInit, ctx: InstanceContext<IngressEvent>) {
  const { Aedes } = await loadAedes();
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    broker.handle(sock);
  });
  await new Promise<void>((resolve) => {
    server.once('error', (err) => {
      ctx.emit({ t: 'broker', state: 'error', port: init.port, error: err.message });
      resolve();
    });
    server.listen(init.port, init.host, () => {
      const a = server.address();
      ctx.emit({ t: 'broker', state: 'listening', port: typeof a === 'object' && a ? a.port : init.port });
      resolve();
    });
  });
  return {
    onCommand(_cmd: IngressCmd): unknown {
      return undefined;
    },
    async close(): Promise<void> {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (server.listening ? server.close(() => r()) : r()));
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

serveInstances<MqttInit, IngressCmd, IngressEvent>((init, ctx) => (init.role === 'broker' ? startBroker(init, ctx) : startClient(init, ctx)));
