// The HX711's serial protocol, independent of how the pins are driven.
// Data-ready: DOUT falls. The host then gives 24 PD_SCK pulses and reads one
// bit (MSB first) while each pulse is high, then 1-3 more pulses select the
// channel/gain of the NEXT conversion (25: A/128, 26: B/32, 27: A/64). After
// the last pulse the chip pulls DOUT high until the next conversion.
// A PD_SCK high for more than 60 us powers the chip down: the remaining bits
// read as 1s and the chip restarts at A/128 — the classic bad read on a
// preempted Linux thread. Every read is guarded (readFrame):
// - each pulse is timed from a tick taken BEFORE its rising edge to one taken
//   AFTER its falling edge, so a preemption anywhere in the pulse, even
//   between the write and a time stamp, is counted in its high time;
// - no pulse may have been high for 60 us or more (overrun);
// - the whole frame must end within a bound (frame-long): a frame stretched by
//   preemptions risks running into the next conversion;
// - a frame of all ones may be a chip that powered down (DOUT and every bit
//   read high); it is also the valid code -1, so the sampler judges it by the
//   readings before it (sampler-core.ts, reason power_down);
// - DOUT must be high after the last pulse (dout-low).
// Ticks are uint32 microseconds (pigpio's gpioTick) and differences are taken
// in 32-bit arithmetic (clock.ts tickDiff32), right across the wrap.
// Pure: no Node-RED import.
import { tickDiff32 } from './clock';

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
  /** PD_SCK low. */
  sckLow(): void;
  /** A free-running uint32 microsecond tick (pigpio's gpioTick; modelled by the simulated chip). */
  tick(): number;
}

export type ReadFailure = 'not-ready' | 'overrun' | 'dout-low' | 'frame-long';

/**
 * Default bound on a frame's total time, us. A clean bit-bang of 25-27 pulses
 * takes well under 100 us; a frame over 1 ms was preempted several times and
 * is dropped before it can run into the next conversion (12.5 ms at 80 SPS).
 */
export const MAX_FRAME_US = 1000;

export interface FrameResult {
  /** Two's complement value, -0x800000..0x7FFFFF (valid only when ok). */
  value: number;
  /** The 24 bits as read. */
  code: number;
  ok: boolean;
  failure?: ReadFailure;
  /** Longest PD_SCK high time of the frame, us (before the rising edge to after the falling edge). */
  maxHighUs: number;
  /** The frame's total time, us (before the first rising edge to after the last falling edge). */
  frameUs: number;
}

/** The code a powered-down chip shifts out (every bit high): -1 as a value. */
export const CODE_ALL_ONES = 0xffffff;

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
export function readFrame(pins: Hx711Pins, pulses: 25 | 26 | 27, maxFrameUs = MAX_FRAME_US): FrameResult {
  if (pins.dout() !== 0) return { value: 0, code: 0, ok: false, failure: 'not-ready', maxHighUs: 0, frameUs: 0 };
  let code = 0;
  let maxHighUs = 0;
  const start = pins.tick();
  let before = start;
  let after = start;
  for (let i = 0; i < pulses; i++) {
    before = pins.tick();
    const bit = pins.sckHigh();
    pins.sckLow();
    after = pins.tick();
    const h = tickDiff32(before, after);
    if (h > maxHighUs) maxHighUs = h;
    if (i < 24) code = (code << 1) | bit;
  }
  code &= 0xffffff;
  const frameUs = tickDiff32(start, after);
  const fail = (failure: ReadFailure): FrameResult => ({ value: 0, code, ok: false, failure, maxHighUs, frameUs });
  if (maxHighUs >= POWER_DOWN_US) return fail('overrun');
  if (frameUs > maxFrameUs) return fail('frame-long');
  if (pins.dout() !== 1) return fail('dout-low');
  return { value: decode24(code), code, ok: true, maxHighUs, frameUs };
}

/** Nominal conversion period for a rate, microseconds. */
export function periodUs(sps: 10 | 80): number {
  return sps === 80 ? 12_500 : 100_000;
}
