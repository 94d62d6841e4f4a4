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
  | { t: 'disturb'; tempC?: number[]; rpm?: number };

export type PlantEvent =
  | { t: 'safety'; what: 'over-temp' | 'overspeed'; heater?: number; value: number }
  | { t: 'fatal'; error: WireError };
