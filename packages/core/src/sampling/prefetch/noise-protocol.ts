/**
 * What the sampling thread and a noise thread share: the jobs, and the words of the control block each stream
 * has (an Int32Array over a SharedArrayBuffer), so either side can wait on the other without an event loop turn
 * (the sampling thread is blocked in onnxruntime's run() or in the sampler; the noise thread in its job).
 */
import type { ImageRngOptions, NoiseSource } from '../rng/image-rng.js';
import type { DrawSlot } from './noise-plan.js';

/** Control words of a stream. */
export const CTRL = {
  /** Results posted so far (the thread adds one after each post, then notifies). */
  produced: 0,
  /** Results the sampling thread has taken (it stores, then notifies: the thread waits on it for room). */
  consumed: 1,
  /** Set to 1 by the sampling thread when it needs no more: the thread stops at the next result. */
  cancelled: 2,
  /** Set to 1 by the thread when its job failed (it then notifies on `produced`): the rest is computed locally. */
  failed: 3,
} as const;
export const CTRL_WORDS = 4;

/** The next draws of an ImageRNG rebuilt from its options and the draws already made. */
export interface RngJob {
  readonly kind: 'rng';
  /** Results name their stream: a thread's port outlives its streams, and a cancelled one's late results are dropped. */
  readonly stream: number;
  readonly ctrl: SharedArrayBuffer;
  readonly window: number;
  readonly opts: ImageRngOptions;
  readonly drawsBefore: number;
  /** One result per slot ('skip' slots post an empty result, so indices stay aligned). */
  readonly slots: readonly DrawSlot[];
}

/** Brownian noise for a share of a run's queries, from a tree of its own (values never depend on query order). */
export interface BrownianJob {
  readonly kind: 'brownian';
  readonly stream: number;
  readonly ctrl: SharedArrayBuffer;
  readonly window: number;
  readonly shape: readonly number[];
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  readonly seeds: readonly number[];
  readonly source: NoiseSource;
  readonly queries: ReadonlyArray<readonly [number, number]>;
}

export type NoiseJob = RngJob | BrownianJob;

/** A result: the noise values (transferred) or null for a skipped draw. */
export interface NoiseResult {
  readonly stream: number;
  readonly index: number;
  readonly data: Float32Array | null;
}

/** Set in the thread's own status block once its modules are loaded: it takes jobs from then on. */
export const STATUS_READY = 0;
