// The one owner of a serial port (an rt-rs485-port instance): opens it,
// reopens it with bounded backoff when it fails or disappears, serialises
// request/response transactions on the half-duplex bus (one at a time, FIFO,
// bounded), and hands bytes received outside a transaction to the passive
// listeners. No Node-RED import: the adapter wires it to a config node, tests
// may hand it any SerialPort-like constructor.
//
// RS485 direction (driver enable) is not toggled from here: it belongs to the
// transceiver (auto-direction HATs and USB adapters) or to the kernel's rs485
// mode of the UART (TIOCSRS485, set by a device-tree overlay), which switch
// at the exact end of the last stop bit; a JS RTS toggle cannot.
import { SerialPort } from 'serialport';

import { coded, type Msg } from '../shared/coded';
import { FairTimer } from '../shared/fair-timer';
import type { Node } from '../shared/red-types';
import type { FrameResult } from '../rt-rs485-watch/modbus-core';
import type { PortConfig } from './port-config';
import { wireMs } from './port-config';

export type LinkState = 'connecting' | 'open' | 'down' | 'closed';

/**
 * Codes of the link's own reasons (catalog <type>.codes.<code> of rt-rs485-port
 * and rt-rs485-watch, which shows them in the door's reason): the port closed
 * with no error, the link is closing, a request found the port not open
 * (params state, and error when the last failure is known), or the queue full.
 * Errors of the serial port itself are passed on verbatim.
 */
export const LINK_CODES = ['port-closed', 'port-closing', 'port-state', 'port-state-error', 'queue-full'] as const;

export interface LinkUser {
  /** link state changes (and, while down, each failed attempt's error) */
  onLink?(state: LinkState, error?: Msg): void;
  /** bytes received while no transaction is running (passive mode), with a monotonic ms stamp */
  onData?(chunk: Buffer, at: number): void;
}

export type TxOutcome = 'done' | 'timeout' | 'error';

export interface Transaction {
  bytes: Buffer;
  /** response timeout (ms), counted from the end of the request on the wire */
  timeoutMs: number;
  /** each chunk received while this transaction runs; return true when the response is complete */
  onData(chunk: Buffer, at: number): boolean;
  /** called exactly once */
  onEnd(outcome: TxOutcome, error?: Msg): void;
}

/** What the link needs from a serial port (serialport's SerialPort satisfies it). */
export interface SerialLike {
  readonly isOpen: boolean;
  open(cb: (err: Error | null) => void): void;
  close(cb?: (err: Error | null) => void): void;
  write(data: Buffer, cb?: (err: Error | null | undefined) => void): boolean;
  on(ev: 'data', fn: (d: Buffer) => void): unknown;
  on(ev: 'close', fn: (err?: Error & { disconnected?: boolean }) => void): unknown;
  on(ev: 'error', fn: (err: Error) => void): unknown;
  removeAllListeners(): unknown;
}

export type SerialFactory = (c: PortConfig) => SerialLike;

export const defaultFactory: SerialFactory = (c) =>
  new SerialPort({
    path: c.path,
    baudRate: c.baudRate,
    dataBits: c.dataBits,
    parity: c.parity,
    stopBits: c.stopBits,
    lock: true,
    autoOpen: false,
  }) as unknown as SerialLike;

export const monoMs = (): number => performance.now();

/** Extra wait for an answer when the response timer itself fired late (event loop held up). */
export const TIMEOUT_GRACE_MS = 20;

export interface LinkStats {
  opens: number;
  reconnects: number;
  refused: number;
  txDone: number;
  txTimeout: number;
  txError: number;
}

export class PortLink {
  state: LinkState = 'connecting';
  lastError: Msg = '';
  readonly stats: LinkStats = { opens: 0, reconnects: 0, refused: 0, txDone: 0, txTimeout: 0, txError: 0 };
  private port: SerialLike | null = null;
  private readonly users = new Set<LinkUser>();
  private readonly queue: Transaction[] = [];
  private active: Transaction | null = null;
  private readonly txTimer = new FairTimer(TIMEOUT_GRACE_MS);
  private nextTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoff: number;
  private closing = false;
  private started = false;
  private afterOpen: (() => void) | null = null;
  /** Bytes that arrived outside a transaction with no passive listener (a late or unasked-for frame). */
  onStray: ((d: Buffer) => void) | null = null;

  constructor(
    readonly config: PortConfig,
    private readonly factory: SerialFactory = defaultFactory,
    private readonly rand: () => number = Math.random,
  ) {
    this.backoff = config.backoffMinMs;
  }

  /** Requests waiting or running. */
  get depth(): number {
    return this.queue.length + (this.active ? 1 : 0);
  }

  register(u: LinkUser): void {
    this.users.add(u);
    u.onLink?.(this.state, this.state === 'down' ? this.lastError : undefined);
    if (!this.started && !this.closing) {
      this.started = true;
      this.open();
    }
  }

  /** Adds a listener that sees link states but does not by itself open the port. */
  observe(u: LinkUser): void {
    this.users.add(u);
  }

  deregister(u: LinkUser): void {
    this.users.delete(u);
    // Transactions of a user that leaves are still answered (onEnd), the user ignores them.
  }

  /**
   * Queues a request. Returns null if queued, else why not (port not open,
   * queue full, closing): the caller counts it as a failed read.
   */
  request(tx: Transaction): Msg | null {
    if (this.closing) return coded('port-closing');
    if (this.state !== 'open') return this.lastError ? coded('port-state-error', { state: this.state, error: this.lastError }) : coded('port-state', { state: this.state });
    if (this.queue.length >= this.config.queueLimit) {
      this.stats.refused++;
      return coded('queue-full');
    }
    this.queue.push(tx);
    if (!this.active && !this.nextTimer) this.next();
    return null;
  }

  private setState(s: LinkState, error?: Msg): void {
    this.state = s;
    if (error !== undefined) this.lastError = error;
    for (const u of [...this.users]) u.onLink?.(s, s === 'down' ? this.lastError : undefined);
  }

  private open(): void {
    if (this.closing) return;
    this.retryTimer = null;
    let p: SerialLike;
    try {
      p = this.factory(this.config);
    } catch (e) {
      this.fail((e as Error).message);
      return;
    }
    this.port = p;
    p.on('data', (d: Buffer) => this.onData(p, d));
    p.on('error', (err: Error) => {
      // Errors after open (a failed write): the transaction sees its own write error.
      this.lastError = err.message;
    });
    p.on('close', (err?: Error & { disconnected?: boolean }) => {
      if (this.port !== p || this.closing) return;
      this.port = null;
      p.removeAllListeners();
      this.abortAll(err?.message ?? coded('port-closed'));
      this.fail(err?.message ?? coded('port-closed'));
    });
    p.open((err) => {
      if (this.closing) {
        // close() came while opening: release the port now, then let close() resolve
        const after = this.afterOpen;
        this.afterOpen = null;
        if (!err) p.close(() => after?.());
        else after?.();
        return;
      }
      if (this.port !== p) return;
      if (err) {
        this.port = null;
        p.removeAllListeners();
        this.fail(err.message);
        return;
      }
      this.stats.opens++;
      if (this.stats.opens > 1) this.stats.reconnects++;
      this.backoff = this.config.backoffMinMs;
      this.lastError = '';
      this.setState('open');
    });
  }

  private fail(error: Msg): void {
    if (this.closing) return;
    this.setState('down', error);
    const jitter = 0.8 + 0.4 * this.rand();
    const wait = Math.round(this.backoff * jitter);
    this.backoff = Math.min(this.config.backoffMaxMs, this.backoff * 2);
    this.retryTimer = setTimeout(() => this.open(), wait);
  }

  private onData(p: SerialLike, d: Buffer): void {
    if (this.port !== p) return;
    const at = monoMs();
    const tx = this.active;
    if (tx) {
      let complete = false;
      try {
        complete = tx.onData(d, at);
      } catch {
        complete = true;
      }
      if (complete) this.end(tx, 'done');
      return;
    }
    let taken = false;
    for (const u of [...this.users]) {
      if (u.onData) {
        taken = true;
        u.onData(d, at);
      }
    }
    if (!taken) this.onStray?.(d);
  }

  private next(): void {
    this.nextTimer = null;
    if (this.active || this.closing || !this.port || this.state !== 'open') return;
    const tx = this.queue.shift();
    if (!tx) return;
    this.active = tx;
    const p = this.port;
    const wire = wireMs(tx.bytes.length, this.config);
    // The timeout covers the request's own time on the wire, then the response timeout.
    const wait = Math.ceil(wire) + tx.timeoutMs;
    // (a timer that fires late gives an answer already in the kernel buffer one short grace: FairTimer)
    this.txTimer.start(wait, () => this.end(tx, 'timeout'));
    p.write(tx.bytes, (err) => {
      if (err) this.end(tx, 'error', err.message);
    });
  }

  private end(tx: Transaction, outcome: TxOutcome, error?: Msg): void {
    if (this.active !== tx) return;
    this.active = null;
    this.txTimer.stop();
    if (outcome === 'done') this.stats.txDone++;
    else if (outcome === 'timeout') this.stats.txTimeout++;
    else this.stats.txError++;
    try {
      tx.onEnd(outcome, error);
    } finally {
      if (this.queue.length > 0 && !this.closing) {
        const gap = this.config.turnaroundMs;
        if (gap > 0) this.nextTimer = setTimeout(() => this.next(), gap);
        else this.next();
      }
    }
  }

  private abortAll(reason: Msg): void {
    const tx = this.active;
    if (tx) this.end(tx, 'error', reason);
    const q = this.queue.splice(0);
    for (const t of q) {
      this.stats.txError++;
      t.onEnd('error', reason);
    }
  }

  /** Stops retrying, fails what is queued and closes the port. Resolves once it is closed (capped). */
  close(capMs = 2000): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.closing = true;
    for (const t of [this.retryTimer, this.nextTimer]) if (t) clearTimeout(t);
    this.retryTimer = this.nextTimer = null;
    const tx = this.active;
    this.active = null;
    this.txTimer.stop();
    for (const t of [...(tx ? [tx] : []), ...this.queue.splice(0)]) t.onEnd('error', coded('port-closing'));
    this.state = 'closed';
    const p = this.port;
    this.port = null;
    this.users.clear();
    if (!p) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const cap = setTimeout(finish, capMs);
      function finish(): void {
        clearTimeout(cap);
        p!.removeAllListeners();
        p!.on('error', () => undefined);
        resolve();
      }
      if (!p.isOpen) {
        // still opening: the open callback closes it and calls finish
        this.afterOpen = finish;
        return;
      }
      p.close(() => finish());
    });
  }
}

/** The rt-rs485-port config node as its users see it. */
export interface Rs485PortNode extends Node {
  config: PortConfig;
  link: PortLink;
  /** Counts one frame outcome in rtedge_rs485_frames_total{port,result}. */
  countFrame(result: FrameResult, n?: number): void;
  /** The frame counts so far (what rtedge_rs485_frames_total exports). */
  frames(): Record<FrameResult, number>;
  register(u: LinkUser): void;
  deregister(u: LinkUser): void;
  /** Queues a request/response transaction on the bus; null if queued, else why not. */
  request(tx: Transaction): Msg | null;
}
