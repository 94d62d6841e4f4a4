// What the scale offers any consumer of its sample stream inside the HAL
// worker (STYLE rule 16: a producer knows no consumer). A consumer is a module
// loaded into the scale's worker by the path its node gives at attach time; it
// exports createConsumer(host, init). It gets every published sample in the
// sampling step (same thread, no hop), may hold the motor, and talks to its
// own node through its own MessagePort (its own lease): its events reach only
// that node. Nothing under nodes/rt-scale/ imports a consumer.
import type { Clock } from './clock';
import type { SampleOut } from './sampler-core';

/** Called for every published sample, in the sampling step: keep it O(1) and allocation-free. */
export type SampleListener = (s: SampleOut, fault: boolean) => void;

/**
 * The motor, held by one consumer at a time. While it is held the scale
 * refuses tare, calibrate and manual motor commands (code motor-held).
 */
export interface MotorHold {
  /** Duty in permille; ignored once released. */
  set(permille: number): void;
  /** Motor off and free for others (idempotent). */
  release(): void;
}

export interface ConsumerHost {
  readonly clock: Clock;
  /** Sample period of the scale, us. */
  readonly periodUs: number;
  /** Subscribes to the sample stream; returns the unsubscribe function. */
  subscribe(fn: SampleListener): () => void;
  /** Takes the motor; throws a CodedError (HOLD_CODES) when another consumer holds it or a tare/calibration is under way. */
  holdMotor(): MotorHold;
  /** Posts an event to the consumer's own node (never blocks). */
  emit(ev: unknown): void;
}

export interface ScaleConsumer {
  /** A command from the consumer's node; a returned value (or promise) answers its request. */
  onCommand(cmd: unknown): unknown;
  /** The consumer's node detaches, or the scale closes: release the motor. */
  close(): void | Promise<void>;
}

export interface ConsumerModule {
  createConsumer(host: ConsumerHost, init: unknown): ScaleConsumer;
}

/** The init of a consumer's lease on the HAL worker. */
export interface ConsumerAttach {
  kind: 'consumer';
  /** The rt-scale config node's id. */
  scaleId: string;
  /** Absolute path of the compiled consumer module. */
  module: string;
  /** Handed to createConsumer (and again after a worker restart: mutate it to keep learned values). */
  init: unknown;
}

/** Codes of holdMotor() and of commands refused while the motor is held (catalog <type>.codes.<code> of the scale and of every consumer). */
export const HOLD_CODES = ['motor-held', 'scale-calibrating', 'no-scale-instance'] as const;
