// A child process of the ws-batcher benchmark holding N WebSocket clients (and
// optionally one stalled client whose socket is paused), so that the clients'
// CPU is not the runtime's. Started with fork(): argv url kind(ours|core) n
// stalled(0|1). Counts every message per client (by its generator index i),
// the delivery latency (receive time - the generator's stamp t) in a 0.1 ms
// histogram, and the bytes read. On the IPC message 'report' it replies with
// its figures and exits.
import { WebSocket } from 'ws';

const [url, kind, nStr, stalledStr] = process.argv.slice(2);
const n = Number(nStr);
const BIN_MS = 0.1;
const hist = new Float64Array(200_000); // 0..20 s
let samples = 0;
const received: number[] = new Array(n).fill(0);
const sockets: WebSocket[] = [];
let opened = 0;

function record(t: number, now: number): void {
  const i = Math.min(hist.length - 1, Math.max(0, Math.round((now - t) / BIN_MS)));
  hist[i]++;
  samples++;
}

function open(k: number, stalled: boolean): void {
  const ws = new WebSocket(url, { perMessageDeflate: true });
  sockets.push(ws);
  ws.on('open', () => {
    opened++;
    if (stalled) (ws as unknown as { _socket: { pause(): void } })._socket.pause();
  });
  ws.on('error', () => undefined);
  if (stalled) return;
  ws.on('message', (data: Buffer) => {
    const now = Date.now();
    const m = JSON.parse(data.toString()) as { t?: string; items?: Array<{ payload: { t: number } }>; i?: number; t0?: number };
    if (kind === 'core') {
      const p = m as unknown as { t: number };
      received[k]++;
      if (k % 5 === 0) record(p.t, now);
      return;
    }
    if (m.t !== 'batch' || !m.items) return;
    received[k] += m.items.length;
    if (k % 5 === 0) for (const it of m.items) record(it.payload.t, now);
  });
}

for (let k = 0; k < n; k++) open(k, false);
if (stalledStr === '1') open(n, true);

const ready = setInterval(() => {
  if (opened >= sockets.length) {
    clearInterval(ready);
    process.send?.({ t: 'ready' });
  }
}, 20);

function pct(q: number): number {
  const rank = Math.max(1, Math.ceil(q * samples));
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += hist[i];
    if (acc >= rank) return i * BIN_MS;
  }
  return NaN;
}

process.on('message', (m: { t: string }) => {
  if (m.t === 'reset') {
    hist.fill(0);
    samples = 0;
    received.fill(0);
    for (const ws of sockets) (ws as unknown as { _bytes0?: number })._bytes0 = (ws as unknown as { _socket?: { bytesRead: number } })._socket?.bytesRead ?? 0;
    process.send?.({ t: 'reset-done' });
    return;
  }
  if (m.t !== 'report') return;
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    const ws = sockets[k] as unknown as { _socket?: { bytesRead: number }; _bytes0?: number };
    bytes += (ws._socket?.bytesRead ?? 0) - (ws._bytes0 ?? 0);
  }
  process.send?.({ t: 'report', p50: pct(0.5), p99: pct(0.99), samples, received, bytes });
  for (const ws of sockets) ws.terminate();
  setTimeout(() => process.exit(0), 100);
});
