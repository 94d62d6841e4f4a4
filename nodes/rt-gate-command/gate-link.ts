// The TCP link to one gate controller, as run inside the gate worker: owns the
// socket, connects and reconnects (bounded backoff with jitter), sends queued
// commands one at a time in order, matches acknowledgements, applies the
// timeout, and measures queue delay and send latency. Never waits for the
// main thread. Plain TypeScript over node:net; timers and clock injected.
import { connect, type Socket } from 'node:net';

import { type Coded, coded } from '../shared/coded';
import { ackMatches, compileAck, LineSplitter, reconnectDelay } from './gate-core';
import type { GateEvent, GateInit } from './gate-protocol';

interface Pending {
  id: number;
  gate: string;
  text: string;
  enqUs: number;
}

/**
 * Codes of result reasons and link errors (catalog rt-gate-command.codes.<code>):
 * why the link dropped (conn-error, conn-closed, no-ack), and why a command
 * failed or timed out.
 */
export const GATE_LINK_CODES = [
  'conn-error',
  'conn-closed',
  'no-ack',
  'lost-before-ack',
  'link-down-unsent',
  'queue-timeout',
  'ack-timeout',
  'bad-reply',
  'closed',
  'closed-before-ack',
  'closed-unsent',
] as const;
type LinkCode = (typeof GATE_LINK_CODES)[number];
const reason = (code: LinkCode, params?: Coded['params']): Coded => coded(code, params);

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
  private pumpSoon: NodeJS.Immediate | null = null;
  private cmdTimer: NodeJS.Timeout | null = null;
  private readonly queue: Pending[] = [];
  /** Sent, awaiting acknowledgement, in send order (the controller answers in order). */
  private inflight: Array<Pending & { sentUs: number; timer: NodeJS.Timeout | null }> = [];
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
    return this.queue.length + this.inflight.length;
  }

  enqueue(p: Pending): void {
    if (this.closed) {
      this.finish(p, 'error', 0, reason('closed'));
      return;
    }
    this.queue.push(p);
    // Commands that arrive together (a burst posted by the flow engine is
    // delivered to this thread in one go) go out in one write: the pump runs
    // once the messages at hand are queued, in this thread's next check phase.
    if (this.pumpSoon === null) {
      this.pumpSoon = setImmediate(() => {
        this.pumpSoon = null;
        this.pump();
      });
    }
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
      this.dropLink(reason(hadError ? 'conn-error' : 'conn-closed'));
    });
  }

  /** The link is gone: fail the command in flight (never silently), reconnect later. */
  private dropLink(why: Coded): void {
    const wasUp = this.connected;
    this.connected = false;
    if (this.sock) {
      this.sock.removeAllListeners('data');
      this.sock.destroy();
    }
    this.sock = null;
    this.lines.reset();
    if (wasUp) this.h.onConnected(false);
    this.failInflight(reason('lost-before-ack', { reason: why }));
    if (this.closed) return;
    this.h.emit({ t: 'link', state: 'down', error: why });
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
      this.finish(p, 'timeout', 0, reason('link-down-unsent'));
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

  private failInflight(why: Coded): void {
    const now = this.h.nowUs();
    for (const c of this.inflight.splice(0)) {
      if (c.timer) clearTimeout(c.timer);
      this.finish(c, 'error', now - c.sentUs, why);
    }
  }

  private pump(): void {
    if (!this.connected || !this.sock || this.closed) {
      if (!this.connected) this.expireQueued();
      return;
    }
    this.clearCmdTimer();
    const limit = this.o.timeoutMs * 1000;
    const max = Math.max(1, this.o.maxInflight);
    const batch: Array<Pending & { sentUs: number; timer: NodeJS.Timeout | null }> = [];
    let bytes = '';
    while (this.inflight.length < max && this.queue.length > 0) {
      const now = this.h.nowUs();
      const p = this.queue.shift()!;
      if (now - p.enqUs >= limit) {
        this.finish(p, 'timeout', 0, reason('queue-timeout'));
        continue;
      }
      const cur = { ...p, sentUs: now, timer: null as NodeJS.Timeout | null };
      this.inflight.push(cur);
      this.h.onSent(now - p.enqUs);
      batch.push(cur);
      bytes += p.text;
      cur.timer = setTimeout(() => {
        cur.timer = null;
        const i = this.inflight.indexOf(cur);
        if (i < 0) return;
        this.inflight.splice(i, 1);
        this.finish(cur, 'timeout', this.h.nowUs() - cur.sentUs, reason('ack-timeout', { ms: this.o.timeoutMs }));
        // A late answer must not be taken for another command's: start a fresh connection.
        this.dropLink(reason('no-ack'));
      }, this.o.timeoutMs);
    }
    if (batch.length === 0) return;
    // One write (one syscall, one segment with no-delay) for the commands sent together.
    this.sock.write(bytes, 'latin1', () => {
      if (!this.ack) for (const cur of batch) this.complete(cur, 'ok');
    });
  }

  private complete(cur: Pending & { sentUs: number; timer: NodeJS.Timeout | null }, result: 'ok' | 'error', why?: Coded, reply?: string): void {
    const i = this.inflight.indexOf(cur);
    if (i < 0) return;
    this.inflight.splice(i, 1);
    if (cur.timer) clearTimeout(cur.timer);
    this.finish(cur, result, this.h.nowUs() - cur.sentUs, why, reply);
    this.pump();
  }

  private onData(d: string): void {
    for (const line of this.lines.push(d)) {
      const cur = this.inflight[0];
      if (!cur || !this.ack) continue; // unsolicited line, or no acknowledgement expected: ignored
      if (ackMatches(this.ack, line, cur.gate)) this.complete(cur, 'ok', undefined, line);
      else this.complete(cur, 'error', reason('bad-reply'), line.slice(0, 200));
    }
  }

  private finish(p: Pending, result: 'ok' | 'timeout' | 'error', sendLatencyUs: number, why?: Coded, reply?: string): void {
    const now = this.h.nowUs();
    const sentUs = (p as Pending & { sentUs?: number }).sentUs;
    const queueDelayUs = sentUs !== undefined ? sentUs - p.enqUs : now - p.enqUs;
    this.h.onDone(result, sendLatencyUs);
    this.h.emit({ t: 'result', id: p.id, result, reason: why, reply, queueDelayUs, sendLatencyUs, totalUs: now - p.enqUs });
  }

  /** Gives queued commands up to graceMs to go out, fails the rest, closes the socket. */
  async close(graceMs: number): Promise<void> {
    const end = Date.now() + graceMs;
    while ((this.inflight.length || this.queue.length) && this.connected && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 5));
    }
    this.closed = true;
    if (this.pumpSoon) clearImmediate(this.pumpSoon);
    this.pumpSoon = null;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.clearCmdTimer();
    this.failInflight(reason('closed-before-ack'));
    for (const p of this.queue.splice(0)) this.finish(p, 'error', 0, reason('closed-unsent'));
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
