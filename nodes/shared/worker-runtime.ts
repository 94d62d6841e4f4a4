// The worker side of the seam (see worker-host.ts). A *.worker.ts entry calls
// serveInstances(factory) once; every attached node instance gets its own
// handler, its own MessagePort and its own init (which may carry
// SharedArrayBuffers for rings and metrics). A handler never waits for the
// main thread: it only posts events.
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';

import { type HostToInstance, type HostToWorker, type InstanceToHost, toWireError, type WorkerToHost } from './protocol';

export interface InstanceContext<Ev> {
  /** Posts an event to the node instance (never blocks). */
  emit(ev: Ev): void;
  /** Identifies this instance inside the worker (unique per attach). */
  readonly lease: number;
}

export interface InstanceHandler<Cmd> {
  /** A command from the node. A returned value (or promise) answers request(). */
  onCommand(cmd: Cmd): unknown;
  /** Finish: flush, release devices. The node's close waits for this. */
  close(): void | Promise<void>;
}

export type HandlerFactory<Init, Cmd, Ev> = (
  init: Init,
  ctx: InstanceContext<Ev>,
) => InstanceHandler<Cmd> | Promise<InstanceHandler<Cmd>>;

/** The key the host gave this worker (leases with the same key share it). */
export function workerKey(): string {
  return (workerData as { key?: string } | null)?.key ?? '';
}

/**
 * Asks the host to keep this worker for the life of the process: it is not
 * terminated when its last lease closes, and not restarted if it dies (its
 * leases then fail with worker-dead). For a thread that loaded a native addon
 * that cannot be loaded again in the process (pigpio).
 */
export function keepForProcess(): void {
  const m: WorkerToHost = { t: 'persist' };
  parentPort?.postMessage(m);
}

export function serveInstances<Init, Cmd, Ev>(factory: HandlerFactory<Init, Cmd, Ev>): void {
  const parent = parentPort;
  if (!parent) throw new Error('serveInstances() must run inside a worker thread');
  parent.on('message', (m: HostToWorker) => {
    if (m.t !== 'attach') return;
    const port = m.port as MessagePort;
    const lease = m.lease;
    const post = (x: InstanceToHost): void => {
      try {
        port.postMessage(x);
      } catch {
        /* port closed: the instance is gone */
      }
    };
    const ctx: InstanceContext<Ev> = { lease, emit: (ev) => post({ t: 'ev', ev }) };
    let handler: InstanceHandler<Cmd> | null = null;
    const queued: HostToInstance[] = [];
    let closing = false;

    const handle = (msg: HostToInstance): void => {
      if (!handler) {
        queued.push(msg);
        return;
      }
      if (msg.t === 'detach') {
        if (closing) return;
        closing = true;
        Promise.resolve()
          .then(() => handler!.close())
          .catch((err) => post({ t: 'ev', ev: { t: 'fatal', error: toWireError(err) } as unknown }))
          .finally(() => {
            post({ t: 'detached' });
            port.close();
          });
        return;
      }
      const rid = msg.rid;
      try {
        const r = handler.onCommand(msg.cmd as Cmd);
        if (rid !== undefined) {
          Promise.resolve(r).then(
            (value) => post({ t: 'reply', rid, ok: true, value }),
            (err) => post({ t: 'reply', rid, ok: false, error: toWireError(err) }),
          );
        }
      } catch (err) {
        if (rid !== undefined) post({ t: 'reply', rid, ok: false, error: toWireError(err) });
        else post({ t: 'ev', ev: { t: 'fatal', error: toWireError(err) } as unknown });
      }
    };
    port.on('message', handle);

    Promise.resolve()
      .then(() => factory(m.init as Init, ctx))
      .then(
        (h) => {
          handler = h;
          const reply: WorkerToHost = { t: 'attached', lease };
          parent.postMessage(reply);
          for (const q of queued.splice(0)) handle(q);
        },
        (err) => {
          const reply: WorkerToHost = { t: 'attach-failed', lease, error: toWireError(err) };
          parent.postMessage(reply);
          port.close();
        },
      );
  });
}
