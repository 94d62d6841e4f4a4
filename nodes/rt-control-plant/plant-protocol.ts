// Commands and events between rt-control-plant and its worker.
import type { WireError } from '../shared/protocol';
import type { ControlSet, GpioPin, SafetyConfig, Setpoints } from './plant-core';

export interface PlantInit {
  /** The latest-state cell (plant-core SnapshotCell). */
  snapshot: SharedArrayBuffer;
  tickMs: number;
  safety: SafetyConfig;
  initial: Setpoints;
  backend: 'simulated';
  testHooks: boolean;
}

export type PlantCmd =
  | { t: 'control'; set: ControlSet }
  | { t: 'gpio'; pin: GpioPin; value: boolean }
  | { t: 'logging'; on: boolean }
  /** Test hook (rtEdgeTestHooks): a stuck heater or a runaway drive. */
  | { t: 'disturb'; tempC?: number[]; rpm?: number }
  /**
   * The writes (control, gpio) one turn of the flow engine's loop handed the node, in arrival order, in
   * one message: one postMessage and one plant tick for all of them. Answered with one result per write.
   */
  | { t: 'batch'; cmds: WriteCmd[] };

/** A write the node batches. */
export type WriteCmd = { t: 'control'; set: ControlSet } | { t: 'gpio'; pin: GpioPin; value: boolean };

/** A batched write's result: its value, or the error applying it raised (the others still apply). */
export type BatchResult = { ok: true; value: unknown } | { ok: false; error: WireError };

export type PlantEvent =
  | { t: 'safety'; what: 'over-temp' | 'overspeed'; heater?: number; value: number }
  | { t: 'fatal'; error: WireError };
