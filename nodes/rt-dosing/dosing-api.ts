// What a deployed rt-dosing node offers besides messages: its admin endpoints
// (the editor's "Learned plant" section) and the benchmarks read it.
import type { Node } from '../shared/red-types';
import type { SharedHistogram } from '../shared/shared-metrics';
import type { LearnedPlant } from './dosing-core';

/** What a deployed rt-dosing node offers its admin endpoints and benchmarks. */
export interface DosingNodeApi extends Node {
  /** The learned plant in use (null: nothing learned yet), its source, and whether a dose runs. */
  learnedView(): { learned: LearnedPlant | null; legacyTauUs: number; running: boolean; loaded: boolean };
  /** Forgets the learned plant (the next dose starts cold); rejects with a worded error while a dose runs. */
  forget(): Promise<void>;
  /** This node's control-step latency histogram (data-ready edge to its motor command), null before the runner is attached. */
  stepHistogram(): SharedHistogram | null;
}

