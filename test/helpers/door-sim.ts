// A simulated door controller on the far end of a pty pair (serialport), for
// tests and benchmarks. In `modbus` mode it answers read requests (0x02, 0x03)
// for its unit id with the current door input, and can be told to misbehave:
// stay silent, answer with a bad CRC, an exception, another unit id, garbage
// before the frame, or the frame split in two writes. In any mode `push()`
// writes a frame as the device would on its own (passive mode).
import { SerialPort } from 'serialport';

import {
  decodeRequest,
  encodeException,
  encodeResponse,
  FN_READ_DISCRETE_INPUTS,
  FN_READ_HOLDING_REGISTERS,
  withCrc,
} from '../../nodes/rt-rs485-watch/modbus-core';

export type Fault = 'none' | 'silent' | 'bad_crc' | 'exception' | 'wrong_unit' | 'garbage_first' | 'split' | 'wrong_unit_then_ok';

export interface DoorSimOptions {
  path: string;
  baudRate?: number;
  unit?: number;
  /** value answered while open (register for 0x03; for 0x02 the bit is 1 when open) */
  openValue?: number;
  closedValue?: number;
  /** delay before answering, ms */
  replyDelayMs?: number;
}

export interface RequestSeen {
  at: number;
  unit: number;
  fn: number;
  address: number;
}

const mono = (): number => performance.now();

export class DoorSim {
  open = false;
  fault: Fault = 'none';
  /** exception code used by the `exception` fault */
  exceptionCode = 4;
  readonly requests: RequestSeen[] = [];
  /** (state, monotonic ms) for each answered poll: what the master saw */
  readonly answered: Array<{ open: boolean; at: number }> = [];
  private port: SerialPort | null = null;
  private rx: Buffer = Buffer.alloc(0);

  constructor(readonly opt: DoorSimOptions) {}

  async start(): Promise<void> {
    const p = new SerialPort({ path: this.opt.path, baudRate: this.opt.baudRate ?? 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => p.open((err) => (err ? reject(err) : resolve())));
    p.on('data', (d: Buffer) => this.onData(d));
    p.on('error', () => undefined);
    this.port = p;
  }

  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  async stop(): Promise<void> {
    const p = this.port;
    this.port = null;
    if (!p || !p.isOpen) return;
    await new Promise<void>((resolve) => p.close(() => resolve()));
  }

  /** Writes raw bytes (passive frames, noise). Resolves once handed to the OS. */
  write(bytes: Buffer | string): Promise<void> {
    const p = this.port;
    if (!p) return Promise.reject(new Error('door sim not started'));
    return new Promise((resolve, reject) => {
      p.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Pushes a frame as the device would (e.g. "OPEN\n"). */
  push(frame: string): Promise<void> {
    return this.write(frame);
  }

  private onData(d: Buffer): void {
    this.rx = this.rx.length ? Buffer.concat([this.rx, d]) : d;
    while (this.rx.length >= 8) {
      const req = decodeRequest(this.rx);
      if (!req) {
        this.rx = this.rx.subarray(1);
        continue;
      }
      this.rx = this.rx.subarray(8);
      this.requests.push({ at: mono(), unit: req.unit, fn: req.fn, address: req.address });
      if (req.unit !== (this.opt.unit ?? 1)) continue;
      const delay = this.opt.replyDelayMs ?? 0;
      const state = this.open;
      const reply = (): void => void this.answer(req.fn, state).catch(() => undefined);
      if (delay > 0) setTimeout(reply, delay);
      else reply();
    }
  }

  private frameFor(fn: number, open: boolean, unit: number): Buffer {
    if (fn === FN_READ_HOLDING_REGISTERS) {
      const v = open ? (this.opt.openValue ?? 1) : (this.opt.closedValue ?? 0);
      return encodeResponse(unit, FN_READ_HOLDING_REGISTERS, Uint8Array.of(v >>> 8, v & 0xff));
    }
    return encodeResponse(unit, FN_READ_DISCRETE_INPUTS, Uint8Array.of(open ? 1 : 0));
  }

  private async answer(fn: number, open: boolean): Promise<void> {
    const unit = this.opt.unit ?? 1;
    if (fn !== FN_READ_DISCRETE_INPUTS && fn !== FN_READ_HOLDING_REGISTERS) {
      await this.write(encodeException(unit, fn, 1));
      return;
    }
    const good = this.frameFor(fn, open, unit);
    switch (this.fault) {
      case 'silent':
        return;
      case 'bad_crc': {
        const bad = Buffer.from(good);
        bad[bad.length - 1] ^= 0x5a;
        await this.write(bad);
        return;
      }
      case 'exception':
        await this.write(encodeException(unit, fn, this.exceptionCode));
        return;
      case 'wrong_unit':
        await this.write(this.frameFor(fn, open, unit === 247 ? 1 : unit + 1));
        return;
      case 'wrong_unit_then_ok':
        // two frames in one write: another unit's answer, then ours
        await this.write(Buffer.concat([this.frameFor(fn, open, unit === 247 ? 1 : unit + 1), good]));
        break;
      case 'garbage_first':
        await this.write(Buffer.concat([Buffer.from([0x00, 0xff, 0x13, unit, 0x7e]), good]));
        break;
      case 'split':
        await this.write(good.subarray(0, 2));
        await new Promise((r) => setTimeout(r, 5));
        await this.write(good.subarray(2));
        break;
      default:
        await this.write(good);
    }
    this.answered.push({ open, at: mono() });
  }
}

/** A raw Modbus frame with a valid CRC, for tests that hand-craft bytes. */
export const frame = (bytes: number[]): Buffer => withCrc(Uint8Array.from(bytes));
