// The motor on the kernel PWM (sysfs, /sys/class/pwm), for the gpiocdev
// backend: no root, no library, file writes of a few microseconds each.
//
// Which channel a GPIO is on (dtoverlay=pwm-2chan routes them):
// - Raspberry Pi 1-4 (BCM2835/2711 PWM block, 2 channels): GPIO 12 and 18 are
//   channel 0, GPIO 13 and 19 channel 1 (12/18 and 13/19 share a channel);
// - Raspberry Pi 5 (RP1's PWM0, 4 channels): GPIO 12 -> 0, 13 -> 1, 18 -> 2,
//   19 -> 3 (RP1's pin functions PWM0_CHAN0..3).
// The pwmchip's number is not stable across kernels (Pi 5: pwmchip2 on 6.6,
// another on 6.12); the chip is found by its device (the PWM block's address):
// Pi 5 1f00098000.pwm (RP1's PWM0; 1f0009c000.pwm is its PWM1), Pi 4
// fe20c000.pwm, Pi 2/3 3f20c000.pwm, Pi 1/Zero 2020c000.pwm.
// Writes: duty_cycle and period are nanoseconds, duty <= period at every
// step; the motor is "off" as duty 0 and enable 0. The channel stays
// exported after close (unexporting and exporting again races udev's
// permission change on every redeploy). The root is a parameter so that a
// temp-dir tree stands in for sysfs in tests.
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { CodedError } from '../shared/coded';

export const PWM_SYSFS = '/sys/class/pwm';

/** The PWM blocks of the Raspberry Pi boards, by device name (the sysfs pwmchip's `device` link). */
export const PI_PWM_DEVICES: Readonly<Record<string, 'pi5' | 'pi1-4'>> = {
  '1f00098000.pwm': 'pi5',
  'fe20c000.pwm': 'pi1-4',
  '3f20c000.pwm': 'pi1-4',
  '2020c000.pwm': 'pi1-4',
  '7e20c000.pwm': 'pi1-4',
};

const CHANNELS: Readonly<Record<'pi5' | 'pi1-4', Readonly<Record<number, number>>>> = {
  'pi1-4': { 12: 0, 18: 0, 13: 1, 19: 1 },
  pi5: { 12: 0, 13: 1, 18: 2, 19: 3 },
};

/** Codes of the kernel PWM's errors (catalog rt-scale.codes.<code>). */
export const PWM_CODES = ['pwm-no-chip', 'pwm-no-channel', 'pwm-export', 'pwm-access'] as const;

/** Which board this is, from the device tree (Pi 5 or Pi 1-4; anything else counts as Pi 1-4). */
export function boardKind(modelPath = '/proc/device-tree/model'): 'pi5' | 'pi1-4' {
  try {
    return /Raspberry Pi 5|Compute Module 5|Raspberry Pi 500/.test(readFileSync(modelPath, 'utf8')) ? 'pi5' : 'pi1-4';
  } catch {
    return 'pi1-4';
  }
}

/** The PWM channel of a motor GPIO on a board, or undefined (no hardware PWM on that pin). */
export function pwmChannelFor(gpio: number, board: 'pi5' | 'pi1-4'): number | undefined {
  return CHANNELS[board][gpio];
}

/** The pwmchip of the board's PWM block under `root` (e.g. "pwmchip2"), or null. */
export function findPwmChip(root = PWM_SYSFS): { chip: string; board: 'pi5' | 'pi1-4' } | null {
  let names: string[];
  try {
    names = readdirSync(root).filter((n) => /^pwmchip\d+$/.test(n));
  } catch {
    return null;
  }
  for (const n of names.sort((a, b) => Number(a.slice(7)) - Number(b.slice(7)))) {
    try {
      const dev = basename(readlinkSync(join(root, n, 'device')));
      const board = PI_PWM_DEVICES[dev];
      if (board) return { chip: n, board };
    } catch {
      /* not a link: not one of ours */
    }
  }
  return null;
}

export interface PwmTarget {
  /** The sysfs class directory (/sys/class/pwm, or a temp tree in tests). */
  root: string;
  /** e.g. "pwmchip0". */
  chip: string;
  channel: number;
}

/** The channel's directory (…/pwmchipN/pwmM). */
export const channelDir = (t: PwmTarget): string => join(t.root, t.chip, `pwm${t.channel}`);

const errText = (e: unknown): string => {
  const x = e as NodeJS.ErrnoException;
  return x && x.code ? `${x.code}: ${x.message.split('\n')[0]}` : String(e);
};

/** Motor off on an exit path (main thread's exit handler, a dead HAL thread): best effort, never throws. */
export function pwmOffSync(dir: string): void {
  for (const [f, v] of [
    ['duty_cycle', '0'],
    ['enable', '0'],
  ] as const) {
    try {
      writeFileSync(join(dir, f), v);
    } catch {
      /* nothing more to do on the way out */
    }
  }
}

/** Motor off from the flow engine's thread when the HAL thread died (asynchronous: the loop never waits on sysfs). Never rejects. */
export async function pwmOff(dir: string): Promise<void> {
  await writeFile(join(dir, 'duty_cycle'), '0').catch(() => undefined);
  await writeFile(join(dir, 'enable'), '0').catch(() => undefined);
}

const waitCell = new Int32Array(new SharedArrayBuffer(4));

export class KernelPwm {
  readonly dir: string;
  private periodNs = 0;
  private enabled = false;
  private duty = -1;

  constructor(
    readonly target: PwmTarget,
    hz: number,
    /** How long to wait for an exported channel to appear and become writable (udev sets its group). */
    exportWaitMs = 1000,
  ) {
    const chipDir = join(target.root, target.chip);
    if (!existsSync(chipDir)) throw new CodedError('pwm-no-chip', { path: chipDir });
    this.dir = channelDir(target);
    if (!existsSync(this.dir)) {
      try {
        writeFileSync(join(chipDir, 'export'), String(target.channel));
      } catch (e) {
        throw new CodedError('pwm-access', { path: join(chipDir, 'export'), error: errText(e) });
      }
    }
    // the channel's files appear, then udev gives them to the gpio group: retry until writable
    const end = Date.now() + exportWaitMs;
    this.periodNs = Math.max(1, Math.round(1e9 / hz));
    for (;;) {
      try {
        if (!existsSync(this.dir)) throw Object.assign(new Error('not exported yet'), { code: 'ENOENT' });
        this.write('duty_cycle', 0); // duty <= period whatever the old period was
        this.write('period', this.periodNs);
        this.write('enable', 0);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code === 'ENOENT' || code === 'EACCES') && Date.now() < end) {
          Atomics.wait(waitCell, 0, 0, 20);
          continue;
        }
        if (code === 'ENOENT') throw new CodedError('pwm-export', { path: this.dir, ms: exportWaitMs });
        throw new CodedError('pwm-access', { path: this.dir, error: errText(e) });
      }
    }
    this.duty = 0;
    this.enabled = false;
  }

  private write(file: string, v: number): void {
    writeFileSync(join(this.dir, file), String(v));
  }

  /** Duty in permille; 0 = off (duty 0 and disabled). Throws on a failed write. */
  set(permille: number): void {
    const p = Math.max(0, Math.min(1000, Math.round(permille)));
    if (p === this.duty && (p === 0) === !this.enabled) return;
    this.write('duty_cycle', Math.round((this.periodNs * p) / 1000));
    this.duty = p;
    if (p > 0 && !this.enabled) {
      this.write('enable', 1);
      this.enabled = true;
    } else if (p === 0 && this.enabled) {
      this.write('enable', 0);
      this.enabled = false;
    }
  }

  /** The duty the kernel holds, permille of the period (read back from sysfs), or null when unreadable. */
  readBack(): number | null {
    try {
      const en = readFileSync(join(this.dir, 'enable'), 'utf8').trim();
      const d = Number(readFileSync(join(this.dir, 'duty_cycle'), 'utf8').trim());
      return en === '1' ? Math.round((d * 1000) / this.periodNs) : 0;
    } catch {
      return null;
    }
  }

  /** Motor off (best effort). */
  off(): void {
    try {
      this.set(0);
    } catch {
      pwmOffSync(this.dir);
    }
  }
}
