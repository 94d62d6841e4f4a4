// The socket side of the batcher, the same in both modes: a ws server with
// no HTTP server of its own (it takes upgrades for one path from Node-RED's
// server in shared mode, from the batcher's own server in worker mode), the
// Origin allow-list, the client's query (format, resume, hidden), and the
// Conn the hub talks to. Also the client module files it serves over HTTP.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';

import { WebSocket, WebSocketServer } from 'ws';

import type { Client, Conn, Format, Hub } from './batcher-core';

export interface DeflateOptions {
  /** Frames smaller than this are not compressed (bytes); 0 = compression off. */
  threshold: number;
  /** Compressions running at once (ws's zlib jobs, all clients). */
  concurrency: number;
}

export type VerifyClient = ((info: unknown) => boolean) | ((info: unknown, cb: (ok: boolean, code?: number, msg?: string) => void) => void);

export interface ServeOptions {
  /** Full URL path of the socket (httpNodeRoot included in shared mode). */
  path: string;
  /** Allowed Origin header values; empty = any. */
  origins: readonly string[];
  deflate: DeflateOptions;
  /** Node-RED's webSocketNodeVerifyClient (shared mode). */
  verifyClient?: VerifyClient;
  /** A refused upgrade (counted). */
  onRefused?(why: 'origin' | 'verify'): void;
}

/** Origin allow-list: one entry per line or comma; `*` or empty = any origin. */
export function parseOrigins(text: unknown): string[] {
  if (typeof text !== 'string') return [];
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim().replace(/\/+$/, ''))
    .filter((s) => s.length > 0 && s !== '*');
}

export function originAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  if (!origin) return false;
  return allowed.includes(origin.replace(/\/+$/, ''));
}

/** The client's query: format=json|bin, resume=<seq>, hidden=1. */
export function clientQuery(url: string | undefined): { format: Format; resume?: number; hidden: boolean } {
  const q = new URL(url ?? '/', 'http://x').searchParams;
  const r = q.get('resume');
  const resume = r !== null && /^\d{1,15}$/.test(r) ? Number(r) : undefined;
  return { format: q.get('format') === 'bin' ? 'bin' : 'json', resume, hidden: q.get('hidden') === '1' || q.get('hidden') === 'true' };
}

/** The last text frame encoded (WsConn.send): one encoding per batch for all clients. */
let lastText = '';
let lastBytes = Buffer.alloc(0);

class WsConn implements Conn {
  constructor(private readonly ws: WebSocket) {}
  buffered(): number {
    return this.ws.bufferedAmount;
  }
  send(data: string | Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (typeof data !== 'string') {
      this.ws.send(data);
      return;
    }
    // A batch goes to every client as the very same string: encode it to UTF-8
    // once (ws would for each client) and send the bytes as a text frame.
    if (data !== lastText) {
      lastText = data;
      lastBytes = Buffer.from(data, 'utf8');
    }
    this.ws.send(lastBytes, { binary: false });
  }
  close(code: number, reason: string): void {
    const ws = this.ws;
    if (ws.readyState === WebSocket.CLOSED) return;
    try {
      ws.close(code, reason);
    } catch {
      ws.terminate();
      return;
    }
    // A client that does not read cannot take the close frame: cut it (a slow
    // client gets longer to read what is queued, the close frame last).
    const t = setTimeout(() => ws.terminate(), code === 4001 ? 5000 : 1000);
    t.unref();
    ws.once('close', () => clearTimeout(t));
  }
  wireBytes(): number {
    const s = (this.ws as unknown as { _socket?: { bytesWritten?: number } })._socket;
    return typeof s?.bytesWritten === 'number' ? s.bytesWritten : -1;
  }
}

/**
 * A ws server for one path, fed upgrades by `handleUpgrade` (returns false for
 * another path: the caller leaves that socket to other listeners).
 */
export class BatcherSocketServer {
  readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();

  constructor(
    private readonly hub: Hub,
    private readonly o: ServeOptions,
  ) {
    // No context takeover: ws applies `threshold` only then (with takeover it
    // compresses every frame, however small), and no 32 KiB window is kept per client.
    const deflate = o.deflate.threshold > 0 ? { threshold: o.deflate.threshold, concurrencyLimit: o.deflate.concurrency, serverNoContextTakeover: true, clientNoContextTakeover: true } : false;
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: deflate,
      maxPayload: 64 * 1024,
      verifyClient: (info: { origin: string; req: IncomingMessage; secure: boolean }, cb: (ok: boolean, code?: number, msg?: string) => void) => this.verify(info, cb),
    });
    this.wss.on('connection', (ws: WebSocket, req: IncomingMessage) => this.onConnection(ws, req));
  }

  private verify(info: { origin: string; req: IncomingMessage; secure: boolean }, cb: (ok: boolean, code?: number, msg?: string) => void): void {
    if (!originAllowed(info.origin || (info.req.headers.origin as string | undefined), this.o.origins)) {
      this.o.onRefused?.('origin');
      cb(false, 403, 'Forbidden');
      return;
    }
    const user = this.o.verifyClient;
    if (!user) {
      cb(true);
      return;
    }
    const done = (ok: boolean, code?: number, msg?: string): void => {
      if (!ok) this.o.onRefused?.('verify');
      cb(ok, code, msg);
    };
    try {
      if (user.length >= 2) (user as (i: unknown, c: typeof cb) => void)(info, done);
      else done(Boolean((user as (i: unknown) => boolean)(info)), 401);
    } catch {
      done(false, 500);
    }
  }

  /** Takes an upgrade for our path; false when the path is another one. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname !== this.o.path) return false;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
    return true;
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    this.sockets.add(ws);
    const q = clientQuery(req.url);
    let client: Client | null = null;
    ws.on('error', () => undefined);
    ws.on('close', () => {
      this.sockets.delete(ws);
      if (client) this.hub.removeClient(client);
    });
    ws.on('message', (data, isBinary) => {
      if (!isBinary && client) this.hub.onMessage(client, data.toString());
    });
    // The client's id (in its hello frame): a message with msg._session.id set to it goes to this client only.
    client = this.hub.addClient(new WsConn(ws), { ...q, id: randomBytes(8).toString('hex') });
  }

  /** Closes the hub's sockets (1001) and cuts any that do not close within `graceMs`. */
  async close(graceMs = 1000): Promise<void> {
    this.hub.close();
    const left = [...this.sockets];
    if (left.length > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, graceMs);
        let n = left.length;
        for (const ws of left) {
          if (ws.readyState === WebSocket.CLOSED) n--;
          else
            ws.once('close', () => {
              if (--n === 0) {
                clearTimeout(t);
                resolve();
              }
            });
        }
        if (n <= 0) {
          clearTimeout(t);
          resolve();
        }
      });
    }
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** The browser client's files: `client.js` is client/rt-ws-client.js; any other client/<name>.js by its name. */
export function clientFile(dir: string, name: string): string | null {
  const file = name === 'client.js' ? 'rt-ws-client.js' : name;
  if (!/^[a-z0-9][a-z0-9._-]*\.js$/i.test(file) || file.includes('..')) return null;
  const p = join(dir, file);
  if (!existsSync(p)) return null;
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}
