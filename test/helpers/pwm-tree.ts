// TEST ONLY. A temp-dir tree that stands in for /sys/class/pwm: pwmchipN
// directories with export/unexport/npwm, a `device` link named like the
// board's PWM block, and the channels already exported (pwmM with period,
// duty_cycle, enable), as the kernel leaves them after an export.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PwmChipSpec {
  /** e.g. 0 for pwmchip0. */
  n: number;
  /** The device link's name, e.g. "fe20c000.pwm" (Pi 4) or "1f00098000.pwm" (Pi 5). */
  device: string;
  npwm: number;
  /** Channels already exported (default: all). */
  exported?: number[];
}

export function makePwmTree(root: string, chips: PwmChipSpec[]): void {
  mkdirSync(join(root, '..', 'devices'), { recursive: true });
  for (const c of chips) {
    const dir = join(root, `pwmchip${c.n}`);
    mkdirSync(dir, { recursive: true });
    mkdirSync(join(root, '..', 'devices', c.device), { recursive: true });
    symlinkSync(join('..', '..', 'devices', c.device), join(dir, 'device'));
    writeFileSync(join(dir, 'npwm'), `${c.npwm}\n`);
    writeFileSync(join(dir, 'export'), '');
    writeFileSync(join(dir, 'unexport'), '');
    for (const ch of c.exported ?? [...Array(c.npwm).keys()]) exportChannel(root, c.n, ch);
  }
}

/** What the kernel does on `echo M > pwmchipN/export`. */
export function exportChannel(root: string, chip: number, ch: number): void {
  const d = join(root, `pwmchip${chip}`, `pwm${ch}`);
  mkdirSync(d, { recursive: true });
  for (const f of ['period', 'duty_cycle', 'enable']) writeFileSync(join(d, f), '0\n');
}

/** The channel's state as the kernel holds it. */
export function pwmState(root: string, chip: number, ch: number): { enable: number; period: number; duty: number } {
  const r = (f: string): number => Number(readFileSync(join(root, `pwmchip${chip}`, `pwm${ch}`, f), 'utf8').trim());
  return { enable: r('enable'), period: r('period'), duty: r('duty_cycle') };
}
