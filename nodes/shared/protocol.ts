// The MessagePort protocol between a node instance (main thread) and its
// handler inside a worker. Imported by both sides; no Node-RED, no threads.
//
// Worker level (worker.postMessage / parentPort):
//   host -> worker  { t: 'attach', lease, init, port }   a new instance; `port` is its own channel
//   worker -> host  { t: 'attached', lease } | { t: 'attach-failed', lease, error }
// Instance level (the lease's MessagePort):
//   host -> worker  { t: 'cmd', cmd, rid? }               a command; rid asks for a reply
//                   { t: 'detach' }                        close the instance (flush first)
//   worker -> host  { t: 'ev', ev }                        an event from the instance
//                   { t: 'reply', rid, ok, value?, error? }
//                   { t: 'detached' }                      the instance has finished closing

import { CodedError, isCodedError, type MsgParams } from './coded';

/**
 * An error crossing the thread boundary. `params` is present only for a
 * CodedError: `code` is then a catalog code (translated on the main thread),
 * otherwise `code` is a system error code (ENOENT...) and `message` its text.
 */
export interface WireError {
  message: string;
  code?: string;
  params?: MsgParams;
  stack?: string;
}

export type HostToWorker = { t: 'attach'; lease: number; init: unknown; port: unknown };
export type WorkerToHost =
  | { t: 'attached'; lease: number }
  | { t: 'attach-failed'; lease: number; error: WireError }
  /** The worker loaded something that cannot be loaded again in this process (pigpio): keep it for the process's life. */
  | { t: 'persist' };

export type HostToInstance = { t: 'cmd'; cmd: unknown; rid?: number } | { t: 'detach' };
export type InstanceToHost =
  | { t: 'ev'; ev: unknown }
  | { t: 'reply'; rid: number; ok: boolean; value?: unknown; error?: WireError }
  | { t: 'detached' };

export function toWireError(err: unknown): WireError {
  if (isCodedError(err)) return { message: err.message, code: err.code, params: err.params, stack: err.stack };
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return { message: err.message, code: typeof code === 'string' ? code : undefined, stack: err.stack };
  }
  return { message: String(err) };
}

export function fromWireError(w: WireError): Error {
  if (w.params && w.code) return new CodedError(w.code, w.params);
  const e = new Error(w.message) as NodeJS.ErrnoException;
  if (w.code) e.code = w.code;
  return e;
}
