// TEST ONLY preload (node --require) for a child Node-RED that uses the pigpio
// stand-in with `signals: true`: models on the main thread what the pigpio C
// library's gpioInitialise does to the process, wherever it is called from.
//
// The C library installs its own handlers for SIGINT, SIGTERM, SIGHUP... with
// sigaction: from then on Node's handlers (and so Node-RED's "close the flows,
// then exit") never run; pigpio's handler terminates the library and calls
// exit() (no JS, no 'exit' event), and hardware PWM keeps its duty. libuv puts
// its own handler back only when a signal's last JS listener is removed and
// one is added again. Modelled here: signal wraps emit through process.emit
// (bound when a signal's first listener is added, so this preload patches it
// before Node-RED adds any); a signal "owned by pigpio" goes to pigpio's
// handler instead, until its listener count has dropped to 0.
import { isMainThread } from 'node:worker_threads';

import { SIGNAL_CHANNEL } from './pigpio-standin-core';
import { appendFileSync } from 'node:fs';

if (isMainThread) {
  const SIGS = new Set(['SIGINT', 'SIGTERM', 'SIGHUP']);
  const owned = new Set<string>();
  let recordFile: string | undefined;
  const origEmit = process.emit;
  const pigpioHandler = (sig: string): void => {
    if (recordFile) appendFileSync(recordFile, JSON.stringify({ t: 'signal', sig, handledBy: 'pigpio', at: Date.now() }) + '\n');
    // exit() from a C signal handler: no 'exit' event, no flows closed
    (process as unknown as { reallyExit(code: number): never }).reallyExit(255);
  };
  process.emit = function (this: NodeJS.Process, ev: string | symbol, ...args: unknown[]): boolean {
    if (typeof ev === 'string' && owned.has(ev)) {
      pigpioHandler(ev);
      return true;
    }
    return (origEmit as (...a: unknown[]) => boolean).apply(this, [ev, ...args]);
  } as typeof process.emit;
  process.on('removeListener', (ev: string | symbol) => {
    if (typeof ev === 'string' && SIGS.has(ev) && process.listenerCount(ev) === 0) owned.delete(ev); // libuv: SIG_DFL, re-registered on the next add
  });
  const ch = new BroadcastChannel(SIGNAL_CHANNEL);
  (ch as unknown as { unref(): void }).unref();
  ch.onmessage = (m: MessageEvent) => {
    const d = m.data as { t: string; ack: SharedArrayBuffer; record?: string };
    if (d.t !== 'sigaction') return;
    recordFile = d.record;
    for (const s of SIGS) owned.add(s);
    const ack = new Int32Array(d.ack);
    Atomics.store(ack, 0, 1);
    Atomics.notify(ack, 0);
  };
}
