// TEST ONLY. The stand-in `pigpio` module as a process sees it: require it by
// path where the pigpio backend would require 'pigpio' (rt-scale's test hook:
// settings rtEdgeTestHooks + rtEdgePigpioModule = this file's compiled path),
// configured by the environment variable RTEDGE_PIGPIO_STANDIN (JSON,
// StandinConfig in pigpio-standin-core.ts). Never used by shipped code.
//
// Like the real addon (not context-aware: NODE_MODULE, and pigpio.js turns a
// failed load into an empty binding), it loads once per process: the first
// load, in whatever thread, takes a per-process marker file; any later load in
// the process (another thread, or the same thread after its module cache was
// cleared) prints pigpio.js's warning and gets an empty binding, so the first
// call fails with "pigpio.gpioInitialise is not a function".
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

import { Board, pigpioJs, record, STANDIN_ENV, type StandinConfig } from './pigpio-standin-core';

const cfg = JSON.parse(process.env[STANDIN_ENV] || '{}') as StandinConfig;
const processStart = Math.round(Date.now() - process.uptime() * 1000);
const marker = join(cfg.lockDir ?? tmpdir(), `rtedge-pigpio-standin-${process.pid}.loaded`);

function firstLoadInProcess(): boolean {
  try {
    writeFileSync(marker, String(processStart), { flag: 'wx' });
    return true;
  } catch {
    // a marker of an earlier process with the same pid is stale
    const at = Number(readFileSync(marker, 'utf8'));
    if (Math.abs(at - processStart) > 2000) {
      writeFileSync(marker, String(processStart));
      return true;
    }
    return false;
  }
}

let binding: Partial<Board>;
if (firstLoadInProcess()) {
  binding = new Board(cfg);
  record(cfg, { t: 'load' });
  // the marker goes with the process (from a worker thread there is no process exit to hook: the test's temp dir holds it)
  if (isMainThread) process.on('exit', () => rmSync(marker, { force: true }));
} else {
  console.warn('| Warning: The pigpio C library can\'t be loaded on this machine and any |');
  console.warn('| attempt to use it will fail.                                          |');
  console.warn('Error: "Module did not self-register" (pigpio stand-in: loaded a second time in this process)');
  binding = {};
  record(cfg, { t: 'refused' });
}

const api = pigpioJs(binding);
export const Gpio = api.Gpio;
export const getTick = api.getTick;
export const tickDiff = api.tickDiff;
export const initialize = api.initialize;
export const terminate = api.terminate;
export const configureClock = api.configureClock;
export const configureSocketPort = api.configureSocketPort;
export const configureInterfaces = api.configureInterfaces;
export const DISABLE_FIFO_IF = api.DISABLE_FIFO_IF;
export const DISABLE_SOCK_IF = api.DISABLE_SOCK_IF;
export const LOCALHOST_SOCK_IF = api.LOCALHOST_SOCK_IF;
export const DISABLE_ALERT = api.DISABLE_ALERT;
export const CLOCK_PWM = api.CLOCK_PWM;
export const CLOCK_PCM = api.CLOCK_PCM;
