// `npm run hw-check [-- --dout 5 --sck 6 --motor 18 --rate 80 --seconds 10 --motor-test]`
// `[--backend gpiocdev --chip /dev/gpiochip0 --pwm-chip 2 --pwm-channel 2]`:
// on a Raspberry Pi, reads the HX711 through the pigpio (default) or the
// gpiocdev backend (the very
// code rt-scale runs, in this process, with Node-RED stopped) and reports the
// data rate, bad frames by cause, data-ready-to-read latency p50/p99/max and
// the longest clock-high time; with --motor-test, runs the motor at 20 % for
// 1 s and checks that it stops. Attach its output to bug reports.
// On a machine that is not a Raspberry Pi (or a Pi 5 with pigpio, which does
// not support it) it says so and exits non-zero. --sim runs it against the
// stand-in of the backend's module of the test suite (a development checkout
// only; gpiocdev: with a temp-dir tree for /sys/class/pwm), so CI exercises it.
// Not a node: no Node-RED import. Exit codes: 0 pass, 1 check failed, 2 no
// hardware to check, 3 cannot start.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { isCodedError } from '../shared/coded';
import { hrNowUs } from './clock';
import { openGpiocdev } from './hal-gpiocdev';
import { openPigpio, PIGPIO_INTERFACES_OFF } from './hal-pigpio';
import type { ScaleHal } from './hal';
import { periodUs } from './hx711-protocol';
import { BAD_REASONS } from './sampler-core';
import { ScaleEngine } from './scale-engine';
import { SCALE_METRICS, type HalConfig } from './scale-protocol';
import { SharedMetrics } from '../shared/shared-metrics';

interface Args {
  dout: number;
  sck: number;
  motor: number;
  rate: 10 | 80;
  seconds: number;
  motorTest: boolean;
  sim: boolean;
  backend: 'pigpio' | 'gpiocdev';
  chip: string;
  pwmChip: string;
  pwmChannel: number;
}

function parse(argv: string[]): Args {
  const a: Args = { dout: 5, sck: 6, motor: 18, rate: 80, seconds: 10, motorTest: false, sim: false, backend: 'pigpio', chip: '', pwmChip: '', pwmChannel: -1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): number => Number(argv[++i]);
    if (k === '--dout') a.dout = v();
    else if (k === '--sck') a.sck = v();
    else if (k === '--motor') a.motor = v();
    else if (k === '--rate') a.rate = v() === 10 ? 10 : 80;
    else if (k === '--seconds') a.seconds = Math.max(1, v());
    else if (k === '--motor-test') a.motorTest = true;
    else if (k === '--sim') a.sim = true;
    else if (k === '--backend') a.backend = argv[++i] === 'gpiocdev' ? 'gpiocdev' : 'pigpio';
    else if (k === '--chip') a.chip = String(argv[++i]);
    else if (k === '--pwm-chip') a.pwmChip = String(v());
    else if (k === '--pwm-channel') a.pwmChannel = v();
  }
  return a;
}

/** The board model from the device tree, or null when this is not a Raspberry Pi. */
export function piModel(path = '/proc/device-tree/model'): string | null {
  try {
    const m = readFileSync(path, 'utf8').replace(/\0/g, '').trim();
    return /Raspberry Pi/.test(m) ? m : null;
  } catch {
    return null;
  }
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + '\n')): Promise<number> {
  const a = parse(argv);
  let pigpioModule: string | undefined;
  let gpiocdevModule: string | undefined;
  let pwmRoot: string | undefined;
  let simDir: string | null = null;
  const gpiocdev = a.backend === 'gpiocdev';
  out(`rt-scale hw-check ${new Date().toISOString()} node ${process.version}; backend ${a.backend}`);
  if (a.sim) {
    const helpers = join(__dirname, '..', '..', 'test', 'helpers');
    pigpioModule = join(helpers, 'pigpio-standin.js');
    gpiocdevModule = join(helpers, 'gpiocdev-standin.js');
    if (!existsSync(pigpioModule) || !existsSync(gpiocdevModule)) {
      out('--sim needs a development checkout (npm run build there): the stand-ins are not shipped');
      return 3;
    }
    if (gpiocdev) {
      // a temp-dir tree for /sys/class/pwm: a Pi 4's PWM block, both channels exported
      simDir = mkdtempSync(join(tmpdir(), 'rtedge-hwcheck-'));
      pwmRoot = join(simDir, 'class', 'pwm');
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      (require(join(helpers, 'pwm-tree.js')) as { makePwmTree(r: string, c: object[]): void }).makePwmTree(pwmRoot, [{ n: 0, device: 'fe20c000.pwm', npwm: 2 }]);
      a.chip ||= '/dev/gpiochip0';
      process.env.RTEDGE_GPIOCDEV_STANDIN ??= JSON.stringify({ chips: [{ dout: a.dout, sck: a.sck, motor: a.motor, sim: { sps: a.rate } }] });
      out('board: gpiocdev stand-in (simulated HX711, temp-dir sysfs PWM), not hardware');
    } else {
      process.env.RTEDGE_PIGPIO_STANDIN ??= JSON.stringify({ chips: [{ dout: a.dout, sck: a.sck, motor: a.motor, sim: { sps: a.rate } }] });
      out('board: pigpio stand-in (simulated HX711), not hardware');
    }
  } else {
    const model = piModel();
    if (!model) {
      out('board: not a Raspberry Pi (no "Raspberry Pi" in /proc/device-tree/model): nothing to check here; --sim runs the check against the simulated chip');
      return 2;
    }
    out(`board: ${model}; kernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`);
    if (/Raspberry Pi 5/.test(model) && !gpiocdev) {
      out('pigpio does not support the Raspberry Pi 5: the pigpio backend cannot run here; use --backend gpiocdev');
      return 2;
    }
  }
  const cfg: HalConfig = {
    backend: a.backend,
    doutPin: a.dout,
    sckPin: a.sck,
    motorPin: a.motor,
    motorHz: 10_000,
    sps: a.rate,
    pigpioModule,
    ...(gpiocdev ? { gpioChip: a.chip, pwmChip: a.pwmChip, pwmChannel: a.pwmChannel, gpiocdevModule, pwmRoot } : {}),
  };
  out(
    `pins: DOUT ${a.dout}, PD_SCK ${a.sck}, motor ${a.motor}; ${a.rate} SPS; ` +
      (gpiocdev ? `GPIO chip ${a.chip || '(the header\'s, by label)'}` : `pigpio interfaces off: ${PIGPIO_INTERFACES_OFF} (FIFO, socket, alerts)`),
  );
  let failure: unknown = null;
  let hal: ScaleHal;
  try {
    if (gpiocdev) {
      const g = openGpiocdev(cfg, 'hw-check', (e) => (failure = e));
      out(`motor: kernel PWM ${g.pwm.dir}`);
      hal = g;
    } else hal = openPigpio(cfg, 'hw-check', (e) => (failure = e));
  } catch (e) {
    out(`cannot start: ${isCodedError(e) ? `${e.code} ${JSON.stringify(e.params)}` : String(e)}`);
    if (simDir) rmSync(simDir, { recursive: true, force: true });
    return 3;
  }
  // pigpio's C library has just installed its own SIGINT/SIGTERM/SIGHUP handlers (they exit without
  // stopping hardware PWM): a listener of ours puts Node's handler back, and Ctrl-C stops the motor first
  // (gpiocdev: the kernel PWM also keeps its duty when the process ends)
  const onSignal = (sig: NodeJS.Signals): void => {
    try {
      hal.setMotor(0);
    } finally {
      out(`${sig}: motor off, stopped`);
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    }
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  const m = SharedMetrics.create(SCALE_METRICS);
  const period = periodUs(a.rate);
  const engine = new ScaleEngine(hal, { gain: 'A128', cal: { zero: 0, cpgMilli: 1000 }, sampler: {}, calSamples: 4, periodUs: period }, null, m, () => undefined);
  const lat: number[] = [];
  let first = 0;
  engine.addListener((s) => {
    lat.push(hrNowUs() - s.tUs);
    if (!first) first = s.tUs;
  });
  const t0 = hrNowUs();
  engine.start();
  await new Promise((r) => setTimeout(r, a.seconds * 1000));
  const secs = (hrNowUs() - t0) / 1e6;
  const good = m.counter('samples');
  out(`read ${secs.toFixed(1)} s: ${good} good samples, ${(good / secs).toFixed(1)} samples/s (expected ${a.rate}, less ${engine.sampler.o.settle} settling after each power-up)`);
  const bad = [...BAD_REASONS, 'settling'].map((r) => `${r} ${m.counter(r)}`).join(', ');
  out(`bad frames by cause: ${bad}`);
  out(`data-ready to read latency (us, from the earliest the edge can have been): p50 ${pct(lat, 50)}, p99 ${pct(lat, 99)}, max ${lat.length ? Math.max(...lat) : NaN} over ${lat.length}`);
  out(`longest clock-high time: ${engine.maxHighUs} us (the chip powers down at 60 us)`);
  let ok = failure === null && good >= secs * a.rate * 0.5;
  if (a.motorTest && ok) {
    out('motor: 20 % for 1 s');
    engine.setMotor(200);
    await new Promise((r) => setTimeout(r, 1000));
    engine.setMotor(0);
    const read = (hal as unknown as { motorDuty?(): number | null }).motorDuty?.() ?? null;
    const stopped = read === null ? `not readable on this ${a.backend}` : read === 0 ? 'yes' : `NO (duty ${read})`;
    out(`motor stopped: ${stopped}`);
    if (read !== null && read !== 0) ok = false;
  }
  engine.close();
  if (simDir) rmSync(simDir, { recursive: true, force: true });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(sig, onSignal);
  if (failure) out(`the scale failed: ${isCodedError(failure) ? `${failure.code} ${JSON.stringify(failure.params)}` : String(failure)}`);
  out(ok ? 'result: PASS' : 'result: FAIL (fewer than half the expected samples, or a failure above)');
  return ok ? 0 : 1;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(3);
    },
  );
}
