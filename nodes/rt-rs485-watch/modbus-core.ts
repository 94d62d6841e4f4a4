// Modbus RTU framing for reading one door input: CRC-16/MODBUS, the two read
// requests we send (0x02 read discrete inputs, 0x03 read holding registers),
// and a response reader that works on the raw byte stream of a serial port:
// a frame split across reads, two frames in one read, garbage before a frame,
// a frame from another unit, a bad CRC and exception responses. Pure: no
// Node-RED, no serialport, no timers (the caller owns the response timeout).
//
// Why our own and not a library: the part we need is ~150 lines (two read
// functions and their exception form), we already must frame a raw byte stream
// ourselves for the passive mode on the same port, and the libraries (e.g.
// modbus-serial) own the serial port and their own queue, which would fight
// the shared, half-duplex port of rt-rs485-port.
import { type Coded, coded } from '../shared/coded';

export const FN_READ_DISCRETE_INPUTS = 0x02;
export const FN_READ_HOLDING_REGISTERS = 0x03;
export type ReadFunction = typeof FN_READ_DISCRETE_INPUTS | typeof FN_READ_HOLDING_REGISTERS;

/** Result classes, the label values of rtedge_rs485_frames_total{result}. */
export type FrameResult = 'ok' | 'bad_crc' | 'wrong_unit' | 'exception' | 'garbage' | 'timeout';
export const FRAME_RESULTS: readonly FrameResult[] = ['ok', 'bad_crc', 'wrong_unit', 'exception', 'garbage', 'timeout'];

const CRC_TABLE: Uint16Array = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** CRC-16/MODBUS (poly 0x8005 reflected, init 0xFFFF). Sent low byte first. */
export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ buf[i]) & 0xff];
  return crc;
}

/** Appends the CRC (low byte first) to a frame body. */
export function withCrc(body: Uint8Array): Buffer {
  const out = Buffer.alloc(body.length + 2);
  out.set(body, 0);
  const c = crc16(body);
  out[body.length] = c & 0xff;
  out[body.length + 1] = c >>> 8;
  return out;
}

/** True if the last two bytes of buf[start, end) are the CRC of the bytes before them. */
export function crcOk(buf: Uint8Array, start: number, end: number): boolean {
  if (end - start < 4) return false;
  const c = crc16(buf, start, end - 2);
  return buf[end - 2] === (c & 0xff) && buf[end - 1] === c >>> 8;
}

export interface ReadRequest {
  unit: number;
  fn: ReadFunction;
  address: number;
  count: number;
}

export function checkRequest(r: ReadRequest): void {
  if (!Number.isInteger(r.unit) || r.unit < 1 || r.unit > 247) throw new RangeError(`unit id ${r.unit} must be 1-247`);
  if (r.fn !== FN_READ_DISCRETE_INPUTS && r.fn !== FN_READ_HOLDING_REGISTERS) throw new RangeError(`function ${r.fn} must be 2 or 3`);
  if (!Number.isInteger(r.address) || r.address < 0 || r.address > 0xffff) throw new RangeError(`address ${r.address} must be 0-65535`);
  const max = r.fn === FN_READ_DISCRETE_INPUTS ? 2000 : 125;
  if (!Number.isInteger(r.count) || r.count < 1 || r.count > max) throw new RangeError(`count ${r.count} must be 1-${max}`);
}

/** The 8-byte request frame: unit, fn, address hi/lo, count hi/lo, CRC lo/hi. */
export function encodeRequest(r: ReadRequest): Buffer {
  checkRequest(r);
  return withCrc(Uint8Array.of(r.unit, r.fn, r.address >>> 8, r.address & 0xff, r.count >>> 8, r.count & 0xff));
}

/** Byte count of the data field of a normal response to this request. */
export function responseDataBytes(r: Pick<ReadRequest, 'fn' | 'count'>): number {
  return r.fn === FN_READ_DISCRETE_INPUTS ? Math.ceil(r.count / 8) : r.count * 2;
}

/** Builds a normal response (used by the simulated controller and by tests). */
export function encodeResponse(unit: number, fn: ReadFunction, data: Uint8Array): Buffer {
  return withCrc(Uint8Array.from([unit, fn, data.length, ...data]));
}

/** Builds an exception response: unit, fn|0x80, exception code. */
export function encodeException(unit: number, fn: number, code: number): Buffer {
  return withCrc(Uint8Array.of(unit, (fn | 0x80) & 0xff, code));
}

/** Parses a request frame (the controller's side). null unless complete and CRC-valid. */
export function decodeRequest(buf: Uint8Array): (ReadRequest & { length: number }) | null {
  if (buf.length < 8 || !crcOk(buf, 0, 8)) return null;
  return { unit: buf[0], fn: buf[1] as ReadFunction, address: (buf[2] << 8) | buf[3], count: (buf[4] << 8) | buf[5], length: 8 };
}

/** Modbus exception codes and the codes of their names (catalog rt-rs485-watch.codes.<code>). */
export const EXCEPTION_NAMES: Readonly<Record<number, string>> = {
  1: 'exc-illegal-function',
  2: 'exc-illegal-data-address',
  3: 'exc-illegal-data-value',
  4: 'exc-server-device-failure',
  5: 'exc-acknowledge',
  6: 'exc-server-device-busy',
  8: 'exc-memory-parity-error',
  10: 'exc-gateway-path-unavailable',
  11: 'exc-gateway-target-failed',
};
/** Every code an exception reason uses: `modbus-exception` {exception, name}, name one of the above or exc-unknown. */
export const MODBUS_EXCEPTION_CODES = ['modbus-exception', 'exc-unknown', ...Object.values(EXCEPTION_NAMES)] as const;

/** The reason of an exception response: modbus-exception {exception: the number, name: its coded name}. */
export function exceptionReason(exception: number): Coded {
  return coded('modbus-exception', { exception, name: coded(EXCEPTION_NAMES[exception] ?? 'exc-unknown') });
}

/** One event out of the response reader. */
export type ReaderEvent =
  | { result: 'ok'; unit: number; data: Buffer }
  | { result: 'exception'; unit: number; code: number; reason: Coded }
  | { result: 'wrong_unit'; unit: number }
  | { result: 'bad_crc'; unit: number }
  | { result: 'garbage'; bytes: number };

/**
 * Reads the response to one request from a byte stream fed chunk by chunk.
 * It scans for a frame that looks like an answer to the request (function
 * code, or its exception form, and the expected byte count) with a valid CRC,
 * so that it resynchronises after noise within one frame. Bytes skipped before
 * a frame are reported once as `garbage`; a valid frame from another unit is
 * `wrong_unit` and reading goes on; the answer (`ok` or `exception`) ends the
 * transaction (`done`). A complete candidate from our unit with a bad CRC
 * that is the last thing received is `bad_crc` and ends the transaction too
 * (a controller sends nothing more); with bytes after it, scanning goes on.
 */
export class ResponseReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly dataBytes: number;
  done = false;

  constructor(private readonly req: ReadRequest) {
    this.dataBytes = responseDataBytes(req);
  }

  /** Bytes received but not yet part of a reported frame. */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Uint8Array): ReaderEvent[] {
    const events: ReaderEvent[] = [];
    if (this.done) return events;
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const fn = this.req.fn;
    const normalLen = 3 + this.dataBytes + 2;
    let i = 0;
    let skippedFrom = 0;
    const flushGarbage = (to: number): void => {
      if (to > skippedFrom) events.push({ result: 'garbage', bytes: to - skippedFrom });
    };
    while (i < this.buf.length) {
      const b = this.buf;
      const unit = b[i];
      if (i + 1 >= b.length) break; // need the function byte
      const f = b[i + 1];
      let len = 0;
      if (unit >= 1 && unit <= 247 && f === (fn | 0x80)) len = 5;
      else if (unit >= 1 && unit <= 247 && f === fn) {
        if (i + 2 >= b.length) break; // need the byte count
        if (b[i + 2] === this.dataBytes) len = normalLen;
      }
      if (len === 0) {
        i++;
        continue;
      }
      if (i + len > b.length) break; // a plausible frame, not complete yet: wait
      if (crcOk(b, i, i + len)) {
        flushGarbage(i);
        if (unit !== this.req.unit) {
          events.push({ result: 'wrong_unit', unit });
          i += len;
          skippedFrom = i;
          continue;
        }
        if (len === 5) {
          const code = b[i + 2];
          events.push({ result: 'exception', unit, code, reason: exceptionReason(code) });
        } else {
          events.push({ result: 'ok', unit, data: Buffer.from(b.subarray(i + 3, i + 3 + this.dataBytes)) });
        }
        this.done = true;
        this.buf = Buffer.from(b.subarray(i + len));
        return events;
      }
      if (unit === this.req.unit && i + len === b.length) {
        flushGarbage(i);
        events.push({ result: 'bad_crc', unit });
        this.done = true;
        this.buf = Buffer.alloc(0);
        return events;
      }
      i++;
    }
    // Keep from the first byte that may still start a frame; what lies before it is garbage.
    const keepFrom = Math.min(i, this.buf.length);
    flushGarbage(keepFrom);
    this.buf = Buffer.from(this.buf.subarray(keepFrom));
    return events;
  }

  /** The response timeout expired: classify what was left. */
  timeout(): ReaderEvent[] {
    if (this.done) return [];
    this.done = true;
    const n = this.buf.length;
    this.buf = Buffer.alloc(0);
    return n > 0 ? [{ result: 'garbage', bytes: n }] : [];
  }
}

/** The door input out of a response's data: the first bit (0x02) or the first register (0x03). */
export function inputValue(fn: ReadFunction, data: Uint8Array): number {
  if (fn === FN_READ_DISCRETE_INPUTS) return data[0] & 1;
  return (data[0] << 8) | data[1];
}
