// The TCP link to one gate controller, as run inside the gate worker: owns the
// socket, connects and reconnects (bounded backoff with jitter), sends queued
// commands one at a time in order, matches acknowledgements, applies the
// timeout, and measures queue delay and send latency. Never waits for the
// main thread. Plain TypeScript over node:net; timers and clock injected.
import { connect, type Socket } from 'node:net';

import { ackMatches, compileAck, LineSplitter, reconnectDelay } from './gate-core';
import type { GateEvent, GateInit } from './gate-protocol';

interface Pending {
  id: number;
  gate: string;
  text: string;
  enqUs: number;
}

export interface LinkHooks {
  emit(ev: GateEvent): void;
  nowUs(): number;
  onSent(queueDelayUs: number): void;
  onDone(result: 'ok' | 'timeout' | 'error', sendLatencyUs: number): void;
  onConnected(up: boolean): void;
}

export class GateLink {
  private sock: Socket | null = null;
  private connected = false;
  private closed = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private cmdTimer: NodeJS.Timeout | null = null;
  private readonly queue: Pending[] = [];
  private current: (Pending & { sentUs: number }) | null = null;
  private readonly lines = new LineSplitter();
  private readonly ack: RegExp | null;

  constructor(
    private readonly o: GateInit,
    private readonly h: LinkHooks,
  ) {
    this.ack = compileAck(o.ack);
    this.open();
  }

  get depth(): number {
    return this.queue.length + (this.current ? 1 : 0);
  }

  enqueue(p: Pending): void {
    if (this.closed) {
      this.finish(p, 'error', 0, 'closed');
      return;
    }
    this.queue.push(p);
    this.pump();
  }

  private open(): void {
    if (this.closed) return;
    this.h.emit({ t: 'link', state: 'connecting' });
    const s = connect({ host: this.o.host, port: this.o.port });
    this.sock = s;
    s.setNoDelay(true);
    s.setEncoding('latin1');
    s.on('connect', () => {
      if (this.sock !== s) return;
      this.connected = true;
      this.attempt = 0;
      if (this.o.keepAlive) s.setKeepAlive(true, 10_000);
      this.h.onConnected(true);
      this.h.emit({ t: 'link', state: 'connected' });
      this.pump();
    });
    s.on('data', (d: string) => {
      if (this.sock === s) this.onData(d);
    });
    s.on('error', () => undefined); // 'close' follows and carries the outcome
    s.on('close', (hadError: boolean) => {
      if (this.sock !== s) return;
      this.dropLink(hadError ? 'connection error' : 'connection closed by the controller');
    });
  }

  /** The link is gone: fail the command in flight (never silently), reconnect later. */
  private dropLink(reason: string): void {
    const wasUp = this.connected;
    this.connected = false;
    if (this.sock) {
      this.sock.removeAllListeners('data');
      this.sock.destroy();
    }
    this.sock = null;
    this.lines.reset();
    if (wasUp) this.h.onConnected(false);
    if (this.current) {
      const c = this.current;
      this.current = null;
      this.clearCmdTimer();
      this.finish(c, 'error', this.h.nowUs() - c.sentUs, `${reason} before the acknowledgement`);
    }
    if (this.closed) return;
    this.h.emit({ t: 'link', state: 'down', error: reason });
    const delay = reconnectDelay(this.attempt++, this.o.backoffMinMs, this.o.backoffMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.open();
    }, delay);
    // Commands waiting for the link still time out on schedule: a gate must not open late.
    this.expireQueued();
  }

  private expireQueued(): void {
    const now = this.h.nowUs();
    const limit = this.o.timeoutMs * 1000;
    while (this.queue.length && now - this.queue[0].enqUs >= limit) {
      const p = this.queue.shift()!;
      this.finish(p, 'timeout', 0, 'not sent: the link to the gate controller was down');
    }
    if (this.queue.length && !this.connected && !this.closed && this.cmdTimer === null) {
      const wait = Math.max(1, Math.ceil((this.queue[0].enqUs + limit - now) / 1000));
      this.cmdTimer = setTimeout(() => {
        this.cmdTimer = null;
        if (!this.connected) this.expireQueued();
      }, wait);
    }
  }

  private clearCmdTimer(): void {
    if (this.cmdTimer) clearTimeout(this.cmdTimer);
    this.cmdTimer = null;
  }

  private pump(): void {
    if (!this.connected || !this.sock || this.current || this.closed) {
      if (!this.connected) this.expireQueued();
      return;
    }
    this.clearCmdTimer();
    const now = this.h.nowUs();
    const limit = this.o.timeoutMs * 1000;
    let p = this.queue.shift();
    while (p && now - p.enqUs >= limit) {
      this.finish(p, 'timeout', 0, 'waited in the queue longer than the timeout');
      p = this.queue.shift();
    }
    if (!p) return;
    const cur = { ...p, sentUs: now };
    this.current = cur;
    this.h.onSent(now - p.enqUs);
    const s = this.sock;
    s.write(p.text, 'latin1', () => {
      if (this.current === cur && !this.ack) {
        this.current = null;
        this.clearCmdTimer();
        this.finish(cur, 'ok', this.h.nowUs() - cur.sentUs);
        this.pump();
      }
    });
    this.cmdTimer = setTimeout(() => {
      this.cmdTimer = null;
      if (this.current !== cur) return;
      this.current = null;
      this.finish(cur, 'timeout', this.h.nowUs() - cur.sentUs, `no acknowledgement within ${this.o.timeoutMs} ms`);
      // A late answer must not be taken for the next command's: start a fresh connection.
      this.dropLinkQuiet();
    }, this.o.timeoutMs);
  }

  /** Reconnect after a timeout, without failing anything else. */
  private dropLinkQuiet(): void {
    this.dropLink('no acknowledgement');
  }

  private onData(d: string): void {
    for (const line of this.lines.push(d)) {
      const cur = this.current;
      if (!cur) continue; // unsolicited line: ignored
      if (this.ack && ackMatches(this.ack, line, cur.gate)) {
        this.current = null;
        this.clearCmdTimer();
        this.finish(cur, 'ok', this.h.nowUs() - cur.sentUs, undefined, line);
        this.pump();
      } else if (this.ack) {
        this.current = null;
        this.clearCmdTimer();
        this.finish(cur, 'error', this.h.nowUs() - cur.sentUs, 'unexpected reply from the gate controller', line.slice(0, 200));
        this.pump();
      }
    }
  }

  private finish(p: Pending, result: 'ok' | 'timeout' | 'error', sendLatencyUs: number, reason?: string, reply?: string): void {
    const now = this.h.nowUs();
    const sentUs = (p as Pending & { sentUs?: number }).sentUs;
    const queueDelayUs = sentUs !== undefined ? sentUs - p.enqUs : now - p.enqUs;
    this.h.onDone(result, sendLatencyUs);
    this.h.emit({ t: 'result', id: p.id, result, reason, reply, queueDelayUs, sendLatencyUs, totalUs: now - p.enqUs });
  }

  /** Gives queued commands up to graceMs to go out, fails the rest, closes the socket. */
  async close(graceMs: number): Promise<void> {
    const end = Date.now() + graceMs;
    while ((this.current || this.queue.length) && this.connected && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 5));
    }
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.clearCmdTimer();
    if (this.current) {
      const c = this.current;
      this.current = null;
      this.finish(c, 'error', this.h.nowUs() - c.sentUs, 'node closed before the acknowledgement');
    }
    for (const p of this.queue.splice(0)) this.finish(p, 'error', 0, 'node closed before the command was sent');
    const s = this.sock;
    this.sock = null;
    if (s) {
      s.removeAllListeners();
      s.on('error', () => undefined);
      s.destroy();
    }
    if (this.connected) this.h.onConnected(false);
    this.connected = false;
  }
}
