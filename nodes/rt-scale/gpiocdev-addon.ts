// rt-scale's own addon over the GPIO character device (native/gpiocdev): its
// JS API, where it is built, how it is loaded and how its errors are worded.
// The addon is context-aware (NAPI_MODULE_INIT): each thread that requires it
// gets its own instance, so the HAL thread may load it again after a restart.
// It is not built by `npm install` (no binding.gyp at the package root: no
// compiler is needed on laptops, Windows or macOS); on a Pi, `npm run
// build:gpiocdev` in the package's directory builds it once.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { CodedError } from '../shared/coded';

export type Bias = 'as-is' | 'disabled' | 'pull-up' | 'pull-down';

export interface LineOptions {
  output?: boolean;
  /** An output's initial level (set in the request itself: no glitch). */
  value?: 0 | 1;
  bias?: Bias;
  consumer?: string;
}

/** The addon's API (native/gpiocdev/gpiocdev.c); test/helpers/gpiocdev-standin.ts has the same. */
export interface GpiocdevAddon {
  chipInfo(path: string): { name: string; label: string; lines: number };
  requestLine(path: string, offset: number, o?: LineOptions): number;
  get(handle: number): number;
  set(handle: number, value: number): void;
  release(handle: number): void;
  openHandles(): number;
}

/** Where `npm run build:gpiocdev` puts the addon (from dist/nodes/rt-scale/). */
export const ADDON_PATH = join(__dirname, '..', '..', '..', 'native', 'gpiocdev', 'build', 'Release', 'rtedge_gpiocdev.node');

/**
 * Codes of the errors opening the gpiocdev backend (catalog rt-scale.codes.<code>;
 * each names the simulated backend): the addon is not built; no GPIO chip of
 * the header found; a chip or line that cannot be opened: missing (ENOENT), no
 * permission (EACCES/EPERM), busy (EBUSY), other.
 */
export const GPIOCDEV_CODES = ['gpiocdev-missing', 'gpiocdev-no-chip', 'gpiocdev-enoent', 'gpiocdev-eacces', 'gpiocdev-ebusy', 'gpiocdev-open'] as const;

/** Loads the addon (or a stand-in at `path`). Throws gpiocdev-missing. */
export function loadAddon(path = ADDON_PATH): GpiocdevAddon {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(path) as GpiocdevAddon;
  } catch (e) {
    throw new CodedError('gpiocdev-missing', { path, error: (e instanceof Error ? e.message : String(e)).split('\n')[0] });
  }
}

/** An error of the addon as a coded error by its errno code (what: "/dev/gpiochip0 line 5"). */
export function lineError(e: unknown, what: string): CodedError {
  const x = e as { code?: string; message?: string };
  const error = String(x?.message ?? e).split('\n')[0];
  switch (x?.code) {
    case 'ENOENT':
    case 'ENODEV':
      return new CodedError('gpiocdev-enoent', { what, error });
    case 'EACCES':
    case 'EPERM':
      return new CodedError('gpiocdev-eacces', { what, error });
    case 'EBUSY':
      return new CodedError('gpiocdev-ebusy', { what, error });
    default:
      return new CodedError('gpiocdev-open', { what, error });
  }
}

/** The GPIO chip of the 40-pin header: the first /dev/gpiochipN whose label is pinctrl-* (pinctrl-bcm2835, -bcm2711, -rp1). */
export function findHeaderChip(addon: GpiocdevAddon, dev = '/dev'): string {
  let names: string[] = [];
  try {
    names = readdirSync(dev).filter((n) => /^gpiochip\d+$/.test(n));
  } catch {
    /* no /dev: none */
  }
  for (const n of names.sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)))) {
    try {
      if (/^pinctrl-/.test(addon.chipInfo(join(dev, n)).label)) return join(dev, n);
    } catch {
      /* not readable: not ours */
    }
  }
  throw new CodedError('gpiocdev-no-chip', { dir: dev });
}
