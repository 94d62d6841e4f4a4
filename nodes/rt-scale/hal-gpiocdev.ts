// The gpiocdev backend (Raspberry Pi 5, and any Pi without root): the HX711's
// pins through the GPIO character device (/dev/gpiochipN, uAPI v2) with our
// own addon (native/gpiocdev, gpiocdev-addon.ts), the motor on the kernel PWM
// (kernel-pwm.ts). Same polled data-ready, guarded frame read and heartbeat as
// the pigpio backend (hal-polled.ts, dout-poller.ts, hx711-protocol.ts).
//
// Unlike pigpio, the addon is context-aware and delivers no callback (every
// call is a synchronous ioctl), so it runs in the ordinary HAL thread, which
// may be restarted after a crash: the addon is loaded again there, and the
// dead thread's line requests were released by the addon's cleanup hook.
// Lines: offsets are BCM GPIO numbers on the header's chip (gpiochip0 on Pi
// 1-4 and on a Pi 5 since kernel 6.6.45; gpiochip4 on a Pi 5 before; found by
// its label pinctrl-* when the scale's chip is empty). The kernel refuses a
// line another program holds (EBUSY); two scales of this process on one pin
// or one PWM channel are refused here with the other scale's name.
import { CodedError } from '../shared/coded';
import { hrNowUs } from './clock';
import type { PollerIo } from './dout-poller';
import { findHeaderChip, type GpiocdevAddon, lineError, loadAddon } from './gpiocdev-addon';
import type { ScaleHal } from './hal';
import { PolledHal } from './hal-polled';
import { boardKind, findPwmChip, KernelPwm, PWM_SYSFS, pwmChannelFor, type PwmTarget } from './kernel-pwm';
import type { HalConfig } from './scale-protocol';

/** Codes of a gpiocdev scale's claims: a PWM channel another scale of this process drives. */
export const GPIOCDEV_PIN_CODES = ['pwm-channel-taken'] as const;

/** Lines and PWM channels held by this thread's open gpiocdev scales. */
const lineOwner = new Map<string, string>();
const channelOwner = new Map<string, { scale: string; pin: number }>();

class GpiocdevHal extends PolledHal {
  private readonly handles: number[] = [];
  private readonly doutH: number;
  private readonly sckH: number;
  private readonly beatH: number | null;

  constructor(
    private readonly addon: GpiocdevAddon,
    chip: string,
    cfg: HalConfig,
    readonly pwm: KernelPwm,
    private readonly unclaim: () => void,
    onFailure: (err: unknown) => void,
    io?: Partial<PollerIo>,
  ) {
    super(cfg.sps, onFailure, io);
    const req = (offset: number, o: Parameters<GpiocdevAddon['requestLine']>[2]): number => {
      try {
        const h = addon.requestLine(chip, offset, o);
        this.handles.push(h);
        return h;
      } catch (e) {
        this.releaseLines();
        throw lineError(e, `${chip} line ${offset}`);
      }
    };
    this.doutH = req(cfg.doutPin, { output: false, bias: cfg.doutBias ?? 'disabled', consumer: 'rtedge hx711 dout' });
    this.sckH = req(cfg.sckPin, { output: true, value: 0, consumer: 'rtedge hx711 pd_sck' });
    this.beatH = cfg.heartbeatPin !== undefined && cfg.heartbeatPin >= 0 ? req(cfg.heartbeatPin, { output: true, value: 0, consumer: 'rtedge heartbeat' }) : null;
  }

  protected readDout(): number {
    return this.addon.get(this.doutH);
  }
  protected writeSck(level: 0 | 1): void {
    this.addon.set(this.sckH, level);
  }
  protected get hasHeartbeat(): boolean {
    return this.beatH !== null;
  }
  protected writeHeartbeat(level: 0 | 1): void {
    if (this.beatH !== null) this.addon.set(this.beatH, level);
  }
  /** A uint32 of monotonic microseconds (the guard takes differences in 32-bit arithmetic). */
  tick(): number {
    return hrNowUs() >>> 0;
  }
  setMotor(permille: number): void {
    this.pwm.set(permille);
  }
  /** The duty the kernel holds, permille (0 = stopped), for hw-check. */
  motorDuty(): number | null {
    return this.pwm.readBack();
  }
  private releaseLines(): void {
    for (const h of this.handles.splice(0)) {
      try {
        this.addon.release(h);
      } catch {
        /* released already */
      }
    }
  }
  protected releasePins(): void {
    try {
      this.pwm.off();
      this.releaseLines();
    } finally {
      this.unclaim();
    }
  }
}

export interface GpiocdevOpen {
  /** The sysfs PWM class directory (tests: a temp tree). */
  pwmRoot?: string;
  /** The addon (tests: a stand-in instance); default: loaded from cfg.gpiocdevModule or the built addon. */
  addon?: GpiocdevAddon;
  /** The board, for the motor GPIO's PWM channel; default: from the device tree. */
  board?: 'pi5' | 'pi1-4';
  io?: Partial<PollerIo>;
}

/** The PWM channel a config drives (chip found by its device when not configured). */
export function resolvePwm(cfg: HalConfig, root: string, board?: 'pi5' | 'pi1-4'): PwmTarget & { board: 'pi5' | 'pi1-4' } {
  let chip = cfg.pwmChip !== undefined && cfg.pwmChip !== '' ? `pwmchip${cfg.pwmChip}` : '';
  let b = board;
  if (!chip) {
    const found = findPwmChip(root);
    if (!found) throw new CodedError('pwm-no-chip', { path: `${root}/pwmchip* (a Raspberry Pi PWM block)` });
    chip = found.chip;
    b ??= found.board;
  }
  b ??= boardKind();
  const channel = cfg.pwmChannel !== undefined && cfg.pwmChannel >= 0 ? cfg.pwmChannel : pwmChannelFor(cfg.motorPin, b);
  if (channel === undefined) throw new CodedError('pwm-no-channel', { pin: cfg.motorPin });
  return { root, chip, channel, board: b };
}

/**
 * Opens a scale's lines and motor PWM on the GPIO character device. Throws a
 * CodedError (GPIOCDEV_CODES, PWM_CODES, pin-busy, pwm-channel-taken).
 * `onFailure` is called if the scale fails later (its motor is then off).
 */
export function openGpiocdev(cfg: HalConfig, scale: string, onFailure: (err: unknown) => void, o: GpiocdevOpen = {}): ScaleHal & { pwm: KernelPwm; motorDuty(): number | null } {
  const addon = o.addon ?? loadAddon(cfg.gpiocdevModule || undefined);
  let chip = cfg.gpioChip || '';
  if (!chip) chip = findHeaderChip(addon);
  const t = resolvePwm(cfg, o.pwmRoot ?? cfg.pwmRoot ?? PWM_SYSFS, o.board);
  // this process's own scales first, by name (the kernel would only say EBUSY, or nothing for PWM)
  const lines = [cfg.doutPin, cfg.sckPin, ...(cfg.heartbeatPin !== undefined && cfg.heartbeatPin >= 0 ? [cfg.heartbeatPin] : [])].map((p) => ({ key: `${chip}:${p}`, pin: p }));
  for (const l of lines) {
    const other = lineOwner.get(l.key);
    if (other !== undefined) throw new CodedError('pin-busy', { pin: l.pin, other });
  }
  const chKey = `${t.root}/${t.chip}/${t.channel}`;
  const holder = channelOwner.get(chKey);
  if (holder) throw new CodedError('pwm-channel-taken', { pin: cfg.motorPin, chip: t.chip, channel: t.channel, other: holder.scale, otherPin: holder.pin });
  for (const l of lines) lineOwner.set(l.key, scale);
  channelOwner.set(chKey, { scale, pin: cfg.motorPin });
  const unclaim = (): void => {
    for (const l of lines) if (lineOwner.get(l.key) === scale) lineOwner.delete(l.key);
    if (channelOwner.get(chKey)?.scale === scale) channelOwner.delete(chKey);
  };
  let pwm: KernelPwm | null = null;
  try {
    pwm = new KernelPwm(t, cfg.motorHz);
    return new GpiocdevHal(addon, chip, cfg, pwm, unclaim, onFailure, o.io);
  } catch (e) {
    pwm?.off();
    unclaim();
    throw e;
  }
}
