// Commands, events, ring layout and shared metrics between a scale (rt-scale
// config node) and its instance in the HAL worker. Consumers of the sample
// stream (rt-dosing) have their own protocol: see scale-consumer.ts.
import type { Coded } from '../shared/coded';
import type { MetricSpec } from '../shared/shared-metrics';
import type { Gain } from './hx711-protocol';
import type { Calibration, SamplerOptions } from './sampler-core';
import type { SimChipOptions, SimFaults } from './sim-hx711';

export const SCALE_METRICS: MetricSpec = {
  /** missed: conversions between two reads' data-ready edges (overwritten before a late reader got to them). */
  counters: ['samples', 'overrun', 'dout_low', 'saturated', 'stuck', 'no_data', 'not_ready', 'frame_long', 'late', 'power_down', 'settling', 'faults', 'missed'],
  /**
   * clock_high_max_us: the longest PD_SCK high time seen (before the rising edge to after the falling edge);
   * clock_high_window_us: the same since the main thread last set it to 0 (the dialog's check window).
   */
  gauges: ['weight_cg', 'noise_ug', 'fault', 'powered', 'clock_high_max_us', 'clock_high_window_us'],
  /** latency: data-ready edge to ring; step: data-ready edge to the end of the consumers' steps (only while one listens). */
  histograms: ['latency', 'step'],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
};

/** Ring record, Int32 words. */
export const REC_SEQ = 0;
export const REC_T_HI = 1;
export const REC_T_LO = 2;
export const REC_RAW = 3;
export const REC_CG = 4;
export const REC_FLAGS = 5;
export const REC_LAT_US = 6;
export const REC_FILTERED = 7;
export const REC_WORDS = 8;
/** 2^10 records: 12.8 s at 80 SPS before a stalled consumer costs a sample. */
export const RING_CAPACITY = 1024;

export function recTimeUs(rec: ArrayLike<number>): number {
  return rec[REC_T_HI] * 4294967296 + (rec[REC_T_LO] >>> 0);
}

export interface HalConfig {
  backend: 'simulated' | 'pigpio' | 'gpiocdev';
  doutPin: number;
  sckPin: number;
  motorPin: number;
  motorHz: number;
  sps: 10 | 80;
  /** pigpio backend: a pin the HAL toggles on every data-ready (hardware watchdog of the motor driver); -1 or absent = none. */
  heartbeatPin?: number;
  /** Simulated backend: chip and world parameters. */
  sim?: Partial<SimChipOptions>;
  /** gpiocdev backend: the GPIO chip's path ('' = the header's chip, found by its label pinctrl-*). */
  gpioChip?: string;
  /** gpiocdev backend: DOUT's bias. */
  doutBias?: 'as-is' | 'disabled' | 'pull-up' | 'pull-down';
  /** gpiocdev backend: the kernel PWM chip's number ('' = the Pi's PWM block, found by its device). */
  pwmChip?: string;
  /** gpiocdev backend: the PWM channel (-1 or absent = the motor GPIO's channel on this board). */
  pwmChannel?: number;
  /** gpiocdev backend: the addon to load (tests point it at a stand-in). */
  gpiocdevModule?: string;
  /** gpiocdev backend: the sysfs PWM class directory (tests: a temp tree). */
  pwmRoot?: string;
  /** The module to load for the pigpio backend (tests point it elsewhere). */
  pigpioModule?: string;
  /** Test hook (simulated backend): append every motor duty change to this file, one permille value a line. */
  motorTrace?: string;
}

export interface ScaleInit {
  kind: 'scale';
  /** The rt-scale config node's id: consumers attach to the instance by it. */
  scaleId: string;
  name: string;
  hal: HalConfig;
  gain: Gain;
  cal: Calibration;
  sampler: Partial<SamplerOptions>;
  ring: SharedArrayBuffer;
  metrics: SharedArrayBuffer;
  /** Samples averaged for tare and calibration. */
  calSamples: number;
  /** Niceness the HAL thread asks for (-20..0; 0 = leave it). */
  nice: number;
  /** One Int32 cell per process: the HAL adds 1 each time it has stopped a motor on 'all-off' (exit-guard.ts waits on it). */
  exitAck?: SharedArrayBuffer;
}

/** Codes of the errors the HAL worker's commands throw (catalog rt-scale.codes.<code>). */
export const SCALE_WORKER_CODES = ['not-simulated'] as const;

export type ScaleCmd =
  | { t: 'tare' }
  | { t: 'calibrate'; knownCg: number }
  | { t: 'power'; on: boolean }
  | { t: 'motor'; permille: number }
  | { t: 'sim'; loadG?: number; empty?: boolean; faults?: SimFaults; flowScale?: number; jammed?: boolean }
  | { t: 'noise' }
  /** The process is exiting: motor off now, then add 1 to exitAck (no hold, no queue). */
  | { t: 'all-off' };

export type ScaleEvent =
  | { t: 'fault'; reason: string; run: number }
  | { t: 'recovered' }
  /** nice: the HAL thread's niceness in effect, null when the asked niceness could not be applied (no root / CAP_SYS_NICE). */
  | { t: 'priority'; nice: number | null; asked: number }
  /** The pigpio module was loaded in the HAL thread (the main thread re-arms its signal handlers, see exit-guard.ts). */
  | { t: 'pigpio' }
  /** gpiocdev backend: the kernel PWM channel's directory, so the main thread can stop the motor itself on exit or when the HAL thread dies. */
  | { t: 'motor-pwm'; dir: string }
  /** The scale failed in the HAL thread (its motor is off); it stays down until redeployed. */
  | { t: 'failed'; error: Coded }
  | { t: 'calibration'; cal: Calibration; how: 'tare' | 'calibrate' };
