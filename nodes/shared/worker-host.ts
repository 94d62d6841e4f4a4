// THE seam between the flow engine and worker threads (main-thread side).
// Together with worker-runtime.ts (the worker side) it is the only code that
// imports worker_threads.
//
// A WorkerLease is one node instance's link to a handler running in a worker.
// Leases with the same `key` share one Worker (one V8 isolate, ~10 MB less per
// extra instance); `shared: false` gives an instance its own thread. The worker
// is started with its first lease and terminated when its last lease closes,
// so redeploys and close leave no thread behind.
//
// If a worker crashes (uncaught exception, out of memory, unexpected exit),
// every lease on it gets onError(err) and the worker is restarted after an
// exponential backoff (with jitter, bounded); each lease is then re-attached
// with its init and gets onRestart(), so the adapter can resend what the dead
// worker had not acknowledged.
//
// A worker that asked to be kept for the process (worker-runtime.ts
// keepForProcess: it loaded pigpio, which cannot be loaded twice in a process)
// outlives its leases: new leases with its key attach to it again. If it dies,
// it is not restarted (a new thread could not load the addon): its leases and
// every later lease with its key fail with worker-dead, plainly.
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';

import { reconnectDelay } from './backoff';
import { CodedError } from './coded';
import {
  fromWireError,
  type HostToInstance,
  type InstanceToHost,
  toWireError,
  type WireError,
  type WorkerToHost,
} from './protocol';

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A worker that has run this long without crashing resets the backoff. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 10_000, stableMs: 30_000 };

/** Delay before restart number `attempt` (0-based): the links' reconnect delay (initial * 2^attempt, capped, +-20 % jitter). */
export function backoffDelay(attempt: number, o: BackoffOptions, rnd: () => number = Math.random): number {
  return reconnectDelay(attempt, o.initialMs, o.maxMs, rnd);
}

/**
 * Codes of the errors a lease reports (each adapter that uses a worker has
 * them in its catalog, <type>.codes.<code>): the worker exited (params key,
 * exitCode), a request before the worker was ready, a request that timed out
 * (ms), requests pending when the lease closed.
 */
export const WORKER_CODES = ['worker-exited', 'worker-not-ready', 'worker-timeout', 'worker-closed'] as const;

/**
 * The error of a lease on a kept worker that died (params key, error): only
 * the adapters whose workers call keepForProcess word it (rt-scale).
 */
export const KEPT_WORKER_CODES = ['worker-dead'] as const;

export type LeaseState = 'starting' | 'ready' | 'restarting' | 'closing' | 'closed';

export interface LeaseOptions<Ev> {
  /** Absolute path of the compiled *.worker.js entry. */
  script: string;
  /** Leases with the same key share a worker. Defaults to the script path. */
  key?: string;
  /** false: this lease gets a worker of its own. Default true. */
  shared?: boolean;
  /** Sent to the worker's handler factory on every (re-)attach. May hold SharedArrayBuffers. */
  init: unknown;
  onEvent(ev: Ev): void;
  /** Worker crashed or the handler failed to start. The lease stays open and recovers. */
  onError(err: Error): void;
  /** Called after a restart re-attached this lease (not on the first start). */
  onRestart?(): void;
  /** Called when the lease is attached and commands flow (first start and every restart). */
  onReady?(): void;
  backoff?: Partial<BackoffOptions>;
  /** resourceLimits for the Worker (only honoured for unshared workers or the first lease). */
  resourceLimits?: { maxOldGenerationSizeMb?: number; maxYoungGenerationSizeMb?: number; stackSizeMb?: number };
}

let nextLeaseId = 1;
const slots = new Map<string, WorkerSlot>();

/**
 * How many worker threads this process currently runs through worker-host (for
 * leak tests). Workers kept for the process (keepForProcess) are not leaks and
 * are counted only with includeKept.
 */
export function activeWorkerCount(includeKept = false): number {
  let n = 0;
  for (const s of slots.values()) if (s.worker && (includeKept || !s.persistent)) n++;
  return n;
}

class WorkerSlot {
  worker: Worker | null = null;
  readonly leases = new Map<number, WorkerLease<unknown>>();
  private attempt = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Kept for the life of the process (keepForProcess). */
  persistent = false;
  /** A kept worker that died: every lease fails with this. */
  dead: Error | null = null;
  private readonly backoff: BackoffOptions;

  constructor(
    readonly key: string,
    private readonly script: string,
    backoff: Partial<BackoffOptions> | undefined,
    private readonly resourceLimits: LeaseOptions<unknown>['resourceLimits'],
  ) {
    this.backoff = { ...DEFAULT_BACKOFF, ...backoff };
  }

  add(lease: WorkerLease<unknown>): void {
    this.leases.set(lease.id, lease);
    if (this.dead) lease._failed(this.dead);
    else if (this.worker) this.attach(lease);
    else if (!this.restartTimer) this.spawn();
  }

  remove(lease: WorkerLease<unknown>): void {
    this.leases.delete(lease.id);
    if (this.leases.size === 0 && !this.persistent && !this.dead) this.shutdown();
  }

  private spawn(): void {
    this.stopping = false;
    const w = new Worker(this.script, {
      workerData: { key: this.key },
      resourceLimits: this.resourceLimits,
      stdout: false,
      stderr: false,
    });
    w.unref();
    this.worker = w;
    this.startedAt = Date.now();
    w.on('message', (m: WorkerToHost) => {
      if (m.t === 'persist') {
        this.persistent = true;
        return;
      }
      const lease = this.leases.get(m.lease);
      if (!lease) return;
      if (m.t === 'attached') lease._attached();
      else if (m.t === 'attach-failed') lease._failed(fromWireError(m.error));
    });
    w.on('error', (err) => this.crashed(w, err));
    w.on('exit', (code) => {
      if (this.worker === w && !this.stopping) {
        this.crashed(w, new CodedError('worker-exited', { key: this.key, exitCode: code }));
      }
    });
    for (const lease of this.leases.values()) this.attach(lease);
  }

  private attach(lease: WorkerLease<unknown>): void {
    const w = this.worker;
    if (!w) return;
    const { port1, port2 } = new MessageChannel();
    lease._bind(port1);
    try {
      w.postMessage({ t: 'attach', lease: lease.id, init: lease.init, port: port2 }, [port2]);
    } catch (err) {
      lease._failed(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private crashed(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = null;
    void w.terminate().catch(() => undefined);
    if (this.persistent) {
      // not restarted: a new thread could not load what this one had loaded
      this.dead = new CodedError('worker-dead', { key: this.key, error: err.message.split('\n')[0] });
      for (const lease of this.leases.values()) lease._crashed(this.dead);
      return;
    }
    if (Date.now() - this.startedAt > this.backoff.stableMs) this.attempt = 0;
    for (const lease of this.leases.values()) lease._crashed(err);
    if (this.leases.size === 0 || this.stopping) return;
    const delay = backoffDelay(this.attempt++, this.backoff);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.leases.size > 0) this.spawn();
    }, delay);
  }

  private shutdown(): void {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const w = this.worker;
    this.worker = null;
    if (slots.get(this.key) === this) slots.delete(this.key);
    if (w) void w.terminate().catch(() => undefined);
  }
}

export class WorkerLease<Ev = unknown, Cmd = unknown> {
  readonly id = nextLeaseId++;
  readonly init: unknown;
  private port: MessagePort | null = null;
  private slot: WorkerSlot | null = null;
  private _state: LeaseState = 'starting';
  private restarts = 0;
  private nextRid = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private detachWaiter: ((ok: boolean) => void) | null = null;
  private readonly opts: LeaseOptions<Ev>;

  constructor(opts: LeaseOptions<Ev>) {
    this.opts = opts;
    this.init = opts.init;
  }

  get state(): LeaseState {
    return this._state;
  }

  /** Number of times the worker under this lease was restarted after a crash. */
  get restartCount(): number {
    return this.restarts;
  }

  start(): this {
    const key = this.opts.shared === false ? `${this.opts.script}#${this.id}` : (this.opts.key ?? this.opts.script);
    let slot = slots.get(key);
    if (!slot) {
      slot = new WorkerSlot(key, this.opts.script, this.opts.backoff, this.opts.resourceLimits);
      slots.set(key, slot);
    }
    this.slot = slot;
    slot.add(this as WorkerLease<unknown>);
    return this;
  }

  /** Sends a command. Returns false (nothing sent) while the worker is (re)starting or closed. */
  post(cmd: Cmd, transfer?: ReadonlyArray<ArrayBuffer | MessagePort>): boolean {
    if (this._state !== 'ready' || !this.port) return false;
    const m: HostToInstance = { t: 'cmd', cmd };
    this.port.postMessage(m, transfer as never);
    return true;
  }

  /** Sends a command and resolves with the handler's return value (rejects if it throws). */
  request<T = unknown>(cmd: Cmd, timeoutMs = 5000): Promise<T> {
    if (this._state !== 'ready' || !this.port) return Promise.reject(new CodedError('worker-not-ready'));
    const rid = this.nextRid++;
    const port = this.port;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new CodedError('worker-timeout', { ms: timeoutMs }));
      }, timeoutMs);
      this.pending.set(rid, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      const m: HostToInstance = { t: 'cmd', cmd, rid };
      port.postMessage(m);
    });
  }

  /**
   * Asks the handler to finish (it flushes) and waits for it, at most timeoutMs;
   * then releases the worker (terminated when this was its last lease).
   * Resolves true if the handler confirmed, false on timeout or a dead worker.
   */
  async close(timeoutMs = 10_000): Promise<boolean> {
    if (this._state === 'closed' || this._state === 'closing') return false;
    const wasReady = this._state === 'ready' && this.port !== null;
    this._state = 'closing';
    let confirmed = false;
    if (wasReady && this.port) {
      const port = this.port;
      confirmed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          this.detachWaiter = null;
          resolve(false);
        }, timeoutMs);
        this.detachWaiter = (ok) => {
          clearTimeout(timer);
          this.detachWaiter = null;
          resolve(ok);
        };
        const m: HostToInstance = { t: 'detach' };
        port.postMessage(m);
      });
    }
    this.finish();
    return confirmed;
  }

  private finish(): void {
    this._state = 'closed';
    if (this.port) {
      this.port.removeAllListeners();
      this.port.close();
    }
    this.port = null;
    for (const p of this.pending.values()) p.reject(new CodedError('worker-closed'));
    this.pending.clear();
    if (this.slot) this.slot.remove(this as WorkerLease<unknown>);
    this.slot = null;
  }

  // ---- called by WorkerSlot ----
  /** @internal */
  _bind(port: MessagePort): void {
    if (this.port) {
      this.port.removeAllListeners();
      this.port.close();
    }
    this.port = port;
    port.on('message', (m: InstanceToHost) => this.onPortMessage(m));
    port.unref();
  }

  /** @internal */
  _attached(): void {
    if (this._state === 'closing' || this._state === 'closed') return;
    const wasRestart = this._state === 'restarting';
    this._state = 'ready';
    this.opts.onReady?.();
    if (wasRestart) this.opts.onRestart?.();
  }

  /** @internal */
  _failed(err: Error): void {
    this.opts.onError(err);
  }

  /** @internal */
  _crashed(err: Error): void {
    if (this.port) {
      this.port.removeAllListeners();
      this.port.close();
      this.port = null;
    }
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (this._state === 'closing') {
      // The worker died while we waited for the flush: nothing more will come.
      this.detachWaiter?.(false);
      return;
    }
    if (this._state === 'closed') return;
    this._state = 'restarting';
    this.restarts++;
    this.opts.onError(err);
  }

  private onPortMessage(m: InstanceToHost): void {
    switch (m.t) {
      case 'ev':
        this.opts.onEvent(m.ev as Ev);
        break;
      case 'reply': {
        const p = this.pending.get(m.rid);
        if (!p) return;
        this.pending.delete(m.rid);
        if (m.ok) p.resolve(m.value);
        else p.reject(fromWireError(m.error as WireError));
        break;
      }
      case 'detached':
        this.detachWaiter?.(true);
        break;
    }
  }
}

export { toWireError };
