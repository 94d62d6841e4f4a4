// A sensor stand-in that floods an MQTT topic, in a child process (so the
// process under test does not pay for publishing). Run as a script with one
// JSON argument (PublisherOptions); it reports on stdout, one JSON line each:
//   {"ev":"connected"}  {"ev":"done","published":N,"first":1,"last":N}
// Frames (parser tracks) or events (parser events) are numbered 1..N per
// sensor. With `bracket`, the first number is sent, then a pause, the flood,
// a pause, and the last number: a broker that drops part of the flood (QoS 0)
// still delivers the first and last, so `published - received == gaps`.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

import { connect } from 'mqtt';

export interface PublisherOptions {
  url: string;
  topic: string;
  kind: 'frames' | 'events';
  /** Messages per second. */
  rate: number;
  seconds: number;
  qos?: 0 | 1 | 2;
  sensor?: string;
  /** Pause (ms) around the flood with a single message before and after. */
  bracket?: number;
  /** Every Nth message is malformed JSON (0: none). */
  malformedEvery?: number;
}

export interface PublisherResult {
  published: number;
  malformed: number;
  first: number;
  last: number;
}

export function startPublisher(o: PublisherOptions): { proc: ChildProcess; connected: Promise<void>; done: Promise<PublisherResult> } {
  const proc = spawn(process.execPath, [__filename, JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let onConn: () => void = () => undefined;
  let onDone: (r: PublisherResult) => void = () => undefined;
  let onErr: (e: Error) => void = () => undefined;
  const connected = new Promise<void>((r, j) => {
    onConn = r;
    onErr = j;
  });
  const done = new Promise<PublisherResult>((r, j) => {
    onDone = r;
    const prev = onErr;
    onErr = (e) => {
      prev(e);
      j(e);
    };
  });
  done.catch(() => undefined);
  connected.catch(() => undefined);
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    const m = JSON.parse(l) as { ev: string } & PublisherResult;
    if (m.ev === 'connected') onConn();
    if (m.ev === 'done') onDone(m);
  });
  proc.once('exit', (code) => onErr(new Error(`publisher exited ${code}`)));
  return { proc, connected, done };
}

function body(o: PublisherOptions, n: number): string {
  const ts = Date.now();
  const sensor = o.sensor ?? 's1';
  if (o.kind === 'frames') return JSON.stringify({ frame: n, ts, sensor, objects: [{ id: `t-${n % 50}`, x: (n % 100) / 10, y: 3.1, z: 1.7 }] });
  return JSON.stringify({ seq: n, ts, sensor, type: n % 2 ? 'zone-enter' : 'zone-exit', track: `t-${n % 50}`, zone: 'store' });
}

async function run(o: PublisherOptions): Promise<void> {
  const out = (x: object): void => {
    process.stdout.write(JSON.stringify(x) + '\n');
  };
  const c = connect(o.url, { reconnectPeriod: 100, clientId: `pub-${process.pid}` });
  await new Promise<void>((r) => c.once('connect', () => r()));
  out({ ev: 'connected' });
  const qos = o.qos ?? 0;
  let n = 0;
  let malformed = 0;
  const send = (): void => {
    n++;
    if (o.malformedEvery && n % o.malformedEvery === 0) {
      malformed++;
      c.publish(o.topic, `{"broken": ${n}`, { qos });
      return;
    }
    c.publish(o.topic, body(o, n), { qos });
  };
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  if (o.bracket) {
    send();
    await sleep(o.bracket);
  }
  const total = Math.round(o.rate * o.seconds);
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * o.rate));
    while (sent < due) {
      send();
      sent++;
    }
    await sleep(1);
  }
  if (o.bracket) {
    await sleep(o.bracket);
    send();
  }
  // let the socket drain before reporting
  await new Promise<void>((r) => c.end(false, {}, () => r()));
  out({ ev: 'done', published: n - malformed, malformed, first: 1, last: n });
}

if (require.main === module) {
  run(JSON.parse(process.argv[2]) as PublisherOptions).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(String(e) + '\n');
      process.exit(1);
    },
  );
}
