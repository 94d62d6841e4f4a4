// TEST ONLY. A stand-in for rt-scale's gpiocdev addon (native/gpiocdev): the
// same JS API (chipInfo, requestLine, get, set, release, openHandles) over a
// simulated board whose HX711s are the bit-level simulated chip, reusing the
// pigpio stand-in's board plumbing (pigpio-standin-core.ts Board: gpioRead /
// gpioWrite on the chips' DOUT and PD_SCK). Loaded by path where the backend
// would load the built addon (rt-scale's test hook: settings rtEdgeTestHooks +
// rtEdgeGpiocdevModule = this file's compiled path), configured by the
// environment variable RTEDGE_GPIOCDEV_STANDIN (JSON, GpiocdevStandinConfig).
//
// Like the real addon: context-aware (every thread that requires it gets its
// own board, and it loads again after a thread ended); a chip path it does not
// have fails with ENOENT, a line requested twice with EBUSY, in the addon's
// words (code, errno, syscall). The motor: the kernel PWM is a temp-dir tree
// (the test's rtEdgePwmRoot); the stand-in reads the channel's enable,
// period and duty_cycle files (at most every 5 ms of DOUT reads) to drive the
// simulated material, as a motor driver on the PWM pin would.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';

import type { GpiocdevAddon, LineOptions } from '../../nodes/rt-scale/gpiocdev-addon';
import { hrNowUs } from '../../nodes/rt-scale/clock';
import { Board, type StandinChip } from './pigpio-standin-core';

export const GPIOCDEV_STANDIN_ENV = 'RTEDGE_GPIOCDEV_STANDIN';

export interface GpiocdevStandinChip extends StandinChip {
  /** The motor's kernel PWM channel directory (…/pwmchipN/pwmM): its duty drives the material flow. */
  pwmDir?: string;
}

export interface GpiocdevStandinConfig {
  /** Chip paths that exist (default ['/dev/gpiochip0']); each is the header's chip, label pinctrl-bcm2711. */
  chipPaths?: string[];
  chips?: GpiocdevStandinChip[];
  /** JSON-lines file of what the board saw (loads, requests, releases). */
  record?: string;
  /** The thread that loaded the stand-in dies once the trigger file exists, once per marker file (a HAL thread crash; the restarted thread runs on). */
  crashOnce?: { trigger: string; marker: string };
}

const ERRNO: Record<string, number> = { ENOENT: 2, EBADF: 9, EACCES: 13, EBUSY: 16 };

function sysError(code: string, syscall: string, path: string, text: string): Error {
  return Object.assign(new Error(`${syscall} ${path}: ${text} (${code})`), { code, errno: ERRNO[code], syscall, path });
}

/** A fresh stand-in addon over its own board. */
export function createGpiocdev(cfg: GpiocdevStandinConfig = {}): GpiocdevAddon & { board: Board; close(): void } {
  const board = new Board({ chips: cfg.chips ?? [{ dout: 5, sck: 6, motor: 18 }], record: cfg.record });
  const paths = new Set(cfg.chipPaths ?? ['/dev/gpiochip0']);
  const rec = (ev: Record<string, unknown>): void => {
    if (cfg.record) appendFileSync(cfg.record, JSON.stringify({ ...ev, thread: threadId, at: Date.now() }) + '\n');
  };
  // the motors' kernel PWM as this thread finds it, before it opens anything (enable, duty_cycle)
  const pwmAtLoad = (cfg.chips ?? []).filter((c) => c.pwmDir).map((c) => {
    try {
      return [Number(readFileSync(join(c.pwmDir!, 'enable'), 'utf8')), Number(readFileSync(join(c.pwmDir!, 'duty_cycle'), 'utf8'))];
    } catch {
      return null;
    }
  });
  rec({ t: 'load', pwm: pwmAtLoad });
  const lines = new Map<number, { path: string; offset: number; output: boolean }>();
  let next = 0;
  const pwmFeeds = (cfg.chips ?? []).filter((c) => c.pwmDir).map((c) => ({ chip: c, at: 0, permille: -1 }));
  const feedMotor = (): void => {
    const now = hrNowUs();
    for (const f of pwmFeeds) {
      if (now - f.at < 5000) continue;
      f.at = now;
      let p = 0;
      try {
        const en = readFileSync(join(f.chip.pwmDir!, 'enable'), 'utf8').trim() === '1';
        const period = Number(readFileSync(join(f.chip.pwmDir!, 'period'), 'utf8'));
        const duty = Number(readFileSync(join(f.chip.pwmDir!, 'duty_cycle'), 'utf8'));
        p = en && period > 0 ? Math.round((duty * 1000) / period) : 0;
      } catch {
        p = 0;
      }
      if (p !== f.permille) {
        f.permille = p;
        board.chipOn(f.chip.dout)?.setMotor(p);
      }
    }
  };
  const line = (h: number, fn: string) => {
    const l = lines.get(h);
    if (!l) throw sysError('EBADF', fn, '(released handle)', 'Bad file descriptor');
    return l;
  };
  let started = false;
  let reads = 0;
  return {
    board,
    chipInfo(path: string) {
      if (!paths.has(path)) throw sysError('ENOENT', 'open', path, 'No such file or directory');
      return { name: path.replace(/^.*\//, ''), label: 'pinctrl-bcm2711', lines: 58 };
    },
    requestLine(path: string, offset: number, o: LineOptions = {}) {
      if (!paths.has(path)) throw sysError('ENOENT', 'open', path, 'No such file or directory');
      for (const l of lines.values()) if (l.path === path && l.offset === offset) throw sysError('EBUSY', 'ioctl(GPIO_V2_GET_LINE_IOCTL)', `${path} line ${offset}`, 'Device or resource busy');
      if (!started) {
        started = true;
        board.gpioInitialise(); // the chips start converting
      }
      const h = next++;
      lines.set(h, { path, offset, output: !!o.output });
      if (o.output) board.gpioWrite(offset, o.value ? 1 : 0);
      rec({ t: 'request', offset, output: !!o.output, bias: o.bias ?? 'as-is' });
      return h;
    },
    get(h: number) {
      const l = line(h, 'ioctl(GPIO_V2_LINE_GET_VALUES_IOCTL)');
      if (cfg.crashOnce && ++reads % 64 === 0 && existsSync(cfg.crashOnce.trigger) && !existsSync(cfg.crashOnce.marker)) {
        writeFileSync(cfg.crashOnce.marker, String(threadId));
        setImmediate(() => {
          throw new Error('gpiocdev stand-in: the HAL thread crashed');
        });
      }
      feedMotor();
      return board.gpioRead(l.offset);
    },
    set(h: number, v: number) {
      const l = line(h, 'ioctl(GPIO_V2_LINE_SET_VALUES_IOCTL)');
      board.gpioWrite(l.offset, v ? 1 : 0);
    },
    release(h: number) {
      const l = lines.get(h);
      if (!l) return;
      if (l.output) board.gpioWrite(l.offset, 0);
      lines.delete(h);
      rec({ t: 'release', offset: l.offset });
    },
    openHandles: () => lines.size,
    close() {
      board.gpioTerminate();
    },
  };
}

// The module as the backend loads it: one board per thread (per module instance), configured by the environment.
let inst: ReturnType<typeof createGpiocdev> | null = null;
const api = (): ReturnType<typeof createGpiocdev> => (inst ??= createGpiocdev(JSON.parse(process.env[GPIOCDEV_STANDIN_ENV] || '{}') as GpiocdevStandinConfig));
// configured by the environment: the board is there as soon as the backend requires the module, as the addon is
if (process.env[GPIOCDEV_STANDIN_ENV]) api();
export const chipInfo = (path: string) => api().chipInfo(path);
export const requestLine = (path: string, offset: number, o?: LineOptions) => api().requestLine(path, offset, o);
export const get = (h: number) => api().get(h);
export const set = (h: number, v: number) => api().set(h, v);
export const release = (h: number) => api().release(h);
export const openHandles = () => api().openHandles();
