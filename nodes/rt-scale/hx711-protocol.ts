// The HX711's serial protocol, independent of how the pins are driven.
// Data-ready: DOUT falls. The host then gives 24 PD_SCK pulses and reads one
// bit (MSB first) while each pulse is high, then 1-3 more pulses select the
// channel/gain of the NEXT conversion (25: A/128, 26: B/32, 27: A/64). After
// the last pulse the chip pulls DOUT high until the next conversion.
// A PD_SCK high for more than 60 us powers the chip down: the remaining bits
// read as 1s and the chip restarts at A/128 — the classic bad read on a
// preempted Linux thread. Every read is guarded: DOUT must be high after the
// last pulse and no pulse may have been high for 60 us or more.
// Pure: no Node-RED import.

export type Gain = 'A128' | 'B32' | 'A64';

export const GAIN_PULSES: Readonly<Record<Gain, 25 | 26 | 27>> = { A128: 25, B32: 26, A64: 27 };

/** High time at which the chip powers down (datasheet: PD_SCK high > 60 us). */
export const POWER_DOWN_US = 60;

export const CODE_MAX = 0x7fffff;
export const CODE_MIN = -0x800000;

/** What a read routine needs from the pins (implemented by the pigpio and simulated backends). */
export interface Hx711Pins {
  /** Current DOUT level. */
  dout(): 0 | 1;
  /** PD_SCK high; returns DOUT sampled while high (the bit the chip shifted out). */
  sckHigh(): 0 | 1;
  /** PD_SCK low; returns how long PD_SCK was high, in microseconds, as measured by the backend. */
  sckLow(): number;
}

export type ReadFailure = 'not-ready' | 'overrun' | 'dout-low';

export interface FrameResult {
  /** Two's complement value, -0x800000..0x7FFFFF (valid only when ok). */
  value: number;
  /** The 24 bits as read. */
  code: number;
  ok: boolean;
  failure?: ReadFailure;
  /** Longest PD_SCK high time of the frame, us. */
  maxHighUs: number;
}

/** 24-bit two's complement to a signed integer. */
export function decode24(code: number): number {
  return ((code & 0xffffff) << 8) >> 8;
}

/** Signed value to the 24-bit code the chip sends (saturating). */
export function encode24(value: number): number {
  const v = value > CODE_MAX ? CODE_MAX : value < CODE_MIN ? CODE_MIN : value | 0;
  return v & 0xffffff;
}

/** One guarded frame read: 24 data pulses then the gain pulses for the next conversion. */
export function readFrame(pins: Hx711Pins, pulses: 25 | 26 | 27): FrameResult {
  if (pins.dout() !== 0) return { value: 0, code: 0, ok: false, failure: 'not-ready', maxHighUs: 0 };
  let code = 0;
  let maxHighUs = 0;
  for (let i = 0; i < 24; i++) {
    const bit = pins.sckHigh();
    const h = pins.sckLow();
    if (h > maxHighUs) maxHighUs = h;
    code = (code << 1) | bit;
  }
  for (let i = 24; i < pulses; i++) {
    pins.sckHigh();
    const h = pins.sckLow();
    if (h > maxHighUs) maxHighUs = h;
  }
  code &= 0xffffff;
  if (maxHighUs >= POWER_DOWN_US) return { value: 0, code, ok: false, failure: 'overrun', maxHighUs };
  if (pins.dout() !== 1) return { value: 0, code, ok: false, failure: 'dout-low', maxHighUs };
  return { value: decode24(code), code, ok: true, maxHighUs };
}

/** Nominal conversion period for a rate, microseconds. */
export function periodUs(sps: 10 | 80): number {
  return sps === 80 ? 12_500 : 100_000;
}
