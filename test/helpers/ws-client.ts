// A real `ws` client for the rt-ws-batcher tests and benchmark: collects the
// frames it receives (JSON parsed, binary decoded) with their arrival time.
import { WebSocket } from 'ws';

import { decodeBin } from '../../nodes/rt-ws-batcher/wire';

export interface Frame {
  at: number;
  binary: boolean;
  /** Parsed JSON, or the decoded binary batch as {t:'batch'|'snapshot', seq, items:[{topic,payload,ts}], flags}. */
  m: { t: string; seq?: number; from?: number; to?: number; coalesced?: number; items?: Array<{ topic: string; payload: unknown; ts: number }>; reason?: string; [k: string]: unknown };
}

export interface TestClient {
  ws: WebSocket;
  frames: Frame[];
  closed: Promise<{ code: number; reason: string }>;
  batches(): Frame[];
  /** Payloads of every live batch item, in order. */
  items(): Array<{ topic: string; payload: unknown; ts: number; at: number }>;
  waitFor(pred: (f: Frame[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  close(): void;
}

export function connect(url: string, opts: { origin?: string; handshakeTimeoutMs?: number } = {}): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin: opts.origin, perMessageDeflate: true, handshakeTimeout: opts.handshakeTimeoutMs ?? 1500 });
    const frames: Frame[] = [];
    let closedResolve: (v: { code: number; reason: string }) => void = () => undefined;
    const closed = new Promise<{ code: number; reason: string }>((r) => (closedResolve = r));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const at = Date.now();
      if (isBinary) {
        const d = decodeBin(data);
        frames.push({ at, binary: true, m: { t: d.flags & 2 ? 'snapshot' : 'batch', seq: d.seq, flags: d.flags, coalesced: d.flags & 1, items: d.points.map((p) => ({ topic: p.topic, payload: p.value, ts: p.ts })) } });
      } else frames.push({ at, binary: false, m: JSON.parse(data.toString()) });
    });
    ws.on('close', (code, reason) => closedResolve({ code, reason: reason.toString() }));
    ws.once('open', () => {
      const c: TestClient = {
        ws,
        frames,
        closed,
        batches: () => frames.filter((f) => f.m.t === 'batch'),
        items: () => frames.filter((f) => f.m.t === 'batch').flatMap((f) => (f.m.items ?? []).map((i) => ({ ...i, at: f.at }))),
        async waitFor(pred, timeoutMs = 5000, what = 'frames') {
          const end = Date.now() + timeoutMs;
          while (!pred(frames)) {
            if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got ${frames.length} frames: ${JSON.stringify(frames.slice(-3).map((f) => f.m)).slice(0, 600)}`);
            await new Promise((r) => setTimeout(r, 10));
          }
        },
        close: () => ws.close(),
      };
      resolve(c);
    });
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}
