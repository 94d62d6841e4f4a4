// Commands, events and shared metrics between an rt-dosing node and its dose
// runner, a consumer of the scale's sample stream inside the scale's HAL
// worker (dosing.consumer.ts). One runner per rt-dosing node, on a lease of
// its own: its events reach only its node.
import type { MetricSpec } from '../shared/shared-metrics';
import type { DoseRecord, DosingParams, LearnedPlant } from './dosing-core';

/** step: data-ready edge to this runner's motor command, us (one per control step). */
export const DOSING_METRICS: MetricSpec = {
  counters: [],
  gauges: [],
  histograms: ['step'],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
};

export interface DosingInit {
  params: Partial<DosingParams>;
  /**
   * What the station learned before, to start from (kept up to date by the
   * node after every dose, so a worker restart or a redeploy keeps it): the
   * whole LearnedPlant, an older version's bare in-flight time (us), or null.
   */
  prior: LearnedPlant | number | null;
  progressEveryUs: number;
  /** SharedMetrics (DOSING_METRICS) of this node. */
  metrics: SharedArrayBuffer;
  /** RED.settings.rtEdgeTestHooks: enables the crash command. */
  testHooks: boolean;
}

export type DosingCmd =
  | { t: 'dose'; targetCg: number; recipe?: string }
  | { t: 'stop'; reason: 'stop' | 'closed' }
  /** Forget what was learned (the next dose starts cold); refused with dose-already-running while a dose runs. */
  | { t: 'forget' }
  /** Test hook (testHooks only): an uncaught exception kills the HAL worker. */
  | { t: 'crash' };

export interface DoseProgress {
  state: string;
  netCg: number;
  targetCg: number;
  elapsedUs: number;
}

export type DoseDone = DoseRecord & { stepP99Us: number; recipe?: string };

export type DosingEvent = { t: 'progress'; p: DoseProgress } | { t: 'done'; rec: DoseDone };

/** Codes of the runner's own errors (catalog rt-dosing.codes.<code>). */
export const DOSING_WORKER_CODES = ['unknown-command'] as const;

/** Why a pending dose ended without a controller record (msg.payload.reason with result "error"). */
export const DOSE_ERROR_REASONS = ['worker-crashed'] as const;
