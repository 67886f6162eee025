/**
 * The training loop both trainers share (A1111's train_embedding / train_hypernetwork, one optimizer step at a
 * time): the schedule's learn rate, `gradient_step` micro-batches whose gradients of `loss / gradient_step`
 * add up, clipping, AdamW. What a kind trains and how its gradient is computed is a `TrainingTarget`.
 *
 * Everything random is keyed by (seed, micro-batch index), so a run restarted from a checkpoint continues exactly
 * as the uninterrupted run would have. A non-finite loss or gradient rolls the run back to its last good state with
 * the learn rate halved (the same data would diverge again at the same rate); after `maxRollbacks` the run fails.
 */
import { DarkroomError } from '../errors.js';
import { adamwStep, cloneAdamWState, newAdamWState, type AdamWState } from './adamw.js';
import { clipGradients, type ClipGradMode } from './clip-grad.js';
import { batchAt, microBatchData, type PreparedDataset } from './dataset.js';
import { runSchedule, type BatchPlan } from './run-plan.js';
import { KeyedStream, keyedNormals } from './keyed-random.js';
import type { LearnRatePlan } from './learn-schedule.js';
import { isIntermediateSave } from './saved-files.js';
import type { DiffusionBatch } from './objective.js';

/** One micro-batch as a target sees it. */
export interface TargetBatch extends DiffusionBatch {
  readonly captions: readonly string[];
  /** Dataset entry indices (targets with per-entry conditioning use them). */
  readonly entries: readonly number[];
}

/** What is trained and how its gradient is computed. */
export interface TrainingTarget {
  /** Element count of each trained tensor, in optimizer order. */
  readonly sizes: readonly number[];
  /** AdamW's weight decay for this kind (A1111: 0 for embeddings, torch's default 0.01 for hypernetworks). */
  readonly weightDecay: number;
  /** The loss of one micro-batch and its gradient with respect to every trained tensor. */
  gradients(params: readonly Float32Array[], batch: TargetBatch): Promise<{ loss: number; grads: Float32Array[] }>;
}

export interface LossEntry {
  /** Optimizer steps done after this one. */
  readonly step: number;
  readonly epoch: number;
  readonly epochStep: number;
  /** Mean of the micro-batch losses of this step. */
  readonly loss: number;
  readonly learnRate: number;
}

/** The whole state of a run between two optimizer steps: enough to continue it anywhere. */
export interface TrainingCheckpoint {
  /** Optimizer steps done, counting the ones before this run (an embedding's `step`). */
  readonly step: number;
  readonly params: readonly Float32Array[];
  readonly optimizer: AdamWState;
  readonly lossLog: readonly LossEntry[];
  /** Multiplier on the schedule's rate after rollbacks (1, 0.5, 0.25, ...). */
  readonly lrScale: number;
  readonly rollbacks: number;
}

export interface TrainingSettings {
  readonly learnRate: string;
  readonly clipGradMode: ClipGradMode;
  readonly clipGradValue: string;
  /** A1111's "max steps": the step count training ends at (counting the steps done before). */
  readonly maxSteps: number;
  readonly batchSize: number;
  readonly gradientStep: number;
  readonly seed: number;
  /**
   * A1111's save_every: a checkpoint (and A1111's intermediate files) after every step count s with (s+1) a
   * multiple of N, named for s+1 as A1111 names them; 0: only at the end, on cancel and on shutdown.
   */
  readonly saveEvery: number;
  readonly maxRollbacks?: number;
}

export interface StepEvent {
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
  readonly learnRate: number;
  readonly epoch: number;
  readonly epochStep: number;
}

export interface RollbackEvent {
  readonly atStep: number;
  readonly toStep: number;
  readonly reason: string;
  readonly lrScale: number;
  readonly rollbacks: number;
}

export type CheckpointReason = 'interval' | 'rollback' | 'stopped' | 'final';

export interface TrainingHooks {
  onStep?(e: StepEvent): void | Promise<void>;
  /** Awaited: a checkpoint counts as good only once the hook has stored it. */
  onCheckpoint?(c: TrainingCheckpoint, reason: CheckpointReason): void | Promise<void>;
  onRollback?(e: RollbackEvent): void | Promise<void>;
  /** Aborting stops the run after the current optimizer step, with a checkpoint. */
  readonly signal?: AbortSignal;
}

export interface TrainingResult {
  readonly status: 'completed' | 'stopped';
  readonly checkpoint: TrainingCheckpoint;
}

const DEFAULT_MAX_ROLLBACKS = 3;

function allFinite(values: readonly Float32Array[]): boolean {
  for (const v of values) for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return false;
  return true;
}

function copyCheckpoint(c: TrainingCheckpoint): TrainingCheckpoint {
  return { ...c, params: c.params.map((p) => p.slice()), optimizer: cloneAdamWState(c.optimizer), lossLog: [...c.lossLog] };
}

/** The state a new run starts from: the initial parameters, a fresh optimizer at the schedule's first rate. */
export function initialCheckpoint(target: TrainingTarget, params: readonly Float32Array[], step: number, firstLr: number): TrainingCheckpoint {
  return {
    step,
    params: params.map((p) => p.slice()),
    optimizer: newAdamWState(target.sizes, firstLr, target.weightDecay),
    lossLog: [],
    lrScale: 1,
    rollbacks: 0,
  };
}

export class TrainingRun {
  readonly plan: LearnRatePlan;
  readonly batches: BatchPlan;

  constructor(
    private readonly target: TrainingTarget,
    private readonly dataset: PreparedDataset,
    private readonly settings: TrainingSettings,
    /** The step the run started from (0, or the loaded embedding's step), fixed for the whole run and its restarts. */
    readonly startStep: number,
    private readonly latentScale: number,
    /** The rate saved with a loaded optimizer state (A1111 keeps it until the schedule next changes). */
    optimizerLr?: number,
  ) {
    ({ plan: this.plan, batches: this.batches } = runSchedule(settings, dataset.entries.length, startStep, optimizerLr));
  }

  /** The step count the run ends at. */
  get finalStep(): number {
    return this.startStep + this.plan.optimizerSteps;
  }

  /** The schedule's first rate: what a fresh optimizer starts with. */
  get firstLearnRate(): number {
    return this.plan.steps[0]?.lr ?? 0;
  }

  private microBatch(micro: number): TargetBatch {
    const entries = batchAt(this.settings.seed, this.dataset.entries.length, this.batches, micro);
    const data = microBatchData(this.dataset, entries, micro, this.latentScale);
    const n = entries.length;
    const stream = new KeyedStream(this.settings.seed, 't', micro);
    const t = Array.from({ length: n }, () => stream.below(1000));
    const noise = keyedNormals(data.latents.data.length, this.settings.seed, 'noise', micro);
    return { ...data, t, entries, noise: { dtype: 'float32', shape: data.latents.shape, data: noise } };
  }

  /** Runs from `start` (a fresh or a restored checkpoint) to the end of the schedule or until stopped. */
  async run(start: TrainingCheckpoint, hooks: TrainingHooks = {}): Promise<TrainingResult> {
    const gs = this.batches.gradientStep;
    const maxRollbacks = this.settings.maxRollbacks ?? DEFAULT_MAX_ROLLBACKS;
    let state = copyCheckpoint(start);
    // Recent good states, newest last. A state saved just before the loss turned non-finite can already hold
    // runaway (finite) parameters, so each further rollback in a row goes one saved state further back.
    const history: TrainingCheckpoint[] = [copyCheckpoint(start)];
    let failuresInRow = 0;
    const f = Math.fround;
    const save = async (reason: CheckpointReason): Promise<void> => {
      await hooks.onCheckpoint?.(copyCheckpoint(state), reason);
      if (reason === 'rollback') return;
      history.push(copyCheckpoint(state));
      if (history.length > maxRollbacks + 1) history.shift();
    };
    while (state.step < this.finalStep) {
      if (hooks.signal?.aborted) {
        await save('stopped');
        return { status: 'stopped', checkpoint: state };
      }
      const index = state.step - this.startStep;
      const planned = this.plan.steps[index]!;
      const lr = planned.lr * state.lrScale;
      const params = state.params.map((p) => p.slice());
      const acc = this.target.sizes.map((n) => new Float32Array(n));
      let loss = 0;
      let failure: string | undefined;
      for (let j = 0; j < gs && !failure; j++) {
        const micro = index * gs + j;
        const r = await this.target.gradients(params, this.microBatch(micro));
        if (!Number.isFinite(r.loss)) failure = `loss is ${r.loss} at micro-batch ${micro}`;
        else if (!allFinite(r.grads)) failure = `a gradient is not finite at micro-batch ${micro}`;
        loss = f(loss + f(r.loss / gs));
        r.grads.forEach((g, k) => {
          const a = acc[k]!;
          for (let i = 0; i < a.length; i++) a[i] = a[i]! + f(g[i]! / gs);
        });
      }
      const optimizer = cloneAdamWState(state.optimizer);
      if (!failure) {
        if (planned.clip) clipGradients(acc, this.settings.clipGradMode, planned.clip.value);
        optimizer.lr = lr;
        adamwStep(params, acc, optimizer);
        if (!allFinite(params)) failure = `the parameters are not finite after step ${state.step + 1}`;
      }
      if (failure) {
        const rollbacks = state.rollbacks + 1;
        if (rollbacks > maxRollbacks) {
          throw new DarkroomError('TRAINING_DIVERGED', `training diverged: ${failure}; rolled back ${maxRollbacks} times with the learn rate halved each time`, {
            step: state.step,
            rollbacks: maxRollbacks,
          });
        }
        failuresInRow++;
        const back = history[Math.max(0, history.length - failuresInRow)]!;
        const lrScale = state.lrScale / 2;
        await hooks.onRollback?.({ atStep: state.step, toStep: back.step, reason: failure, lrScale, rollbacks });
        state = { ...copyCheckpoint(back), lrScale, rollbacks };
        // Stored, so that a restart continues from the rolled-back state and not from the state that failed.
        await save('rollback');
        continue;
      }
      const microDone = (index + 1) * gs;
      const epoch = Math.floor((microDone - 1) / this.batches.microsPerEpoch);
      const epochStep = ((microDone - 1) % this.batches.microsPerEpoch) + 1;
      const entry: LossEntry = { step: state.step + 1, epoch, epochStep, loss, learnRate: lr };
      state = { ...state, step: state.step + 1, params, optimizer, lossLog: [...state.lossLog, entry] };
      await hooks.onStep?.({ step: state.step, steps: this.finalStep, loss, learnRate: lr, epoch, epochStep });
      // A1111's rule: after `step` steps it saves `name-(step+1)` when step+1 is a multiple of save_every.
      if (isIntermediateSave(state.step, this.settings.saveEvery) && state.step < this.finalStep) {
        await save('interval');
        failuresInRow = 0;
      }
    }
    await save('final');
    return { status: 'completed', checkpoint: state };
  }
}
