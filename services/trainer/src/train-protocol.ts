/**
 * Messages between the trainer's main thread and its training thread (train-thread.ts). Plain data only: they
 * cross a worker_threads boundary by structured clone (large byte arrays are transferred, not copied).
 */
import type { DatasetFile } from '@darkroom/core/training/dataset.js';
import type { SavedFile } from '@darkroom/core/training/saved-files.js';
import type { CheckpointReason } from '@darkroom/core/training/trainer.js';
import type { TrainingRequest } from '@darkroom/farm/training-schemas.js';

export interface TrainRequest {
  jobId: string;
  request: TrainingRequest;
  /** Checkpoint file to train on; null = the demo model. */
  checkpoint: { path: string; name: string } | null;
  /** The dataset's files, images and caption `.txt` files, by their names in the dataset. */
  files: DatasetFile[];
  /** The pinned asset `continue_from` named. */
  continueFrom: { filename: string; bytes: Uint8Array } | null;
  /** The checkpoint of the training this one continues (its final or stopped state). */
  parentCheckpoint: Uint8Array | null;
  /** This job's own latest checkpoint, left by an earlier attempt: the run resumes from it. */
  ownCheckpoint: Uint8Array | null;
}

export type HostMessage =
  | { type: 'train'; id: number; request: TrainRequest; stopFlag: SharedArrayBuffer }
  /** The main thread stored checkpoint `seq` (or could not: `error`). */
  | { type: 'stored'; id: number; seq: number; error?: string }
  | { type: 'shutdown' };

export interface StepMessage {
  step: number;
  steps: number;
  loss: number;
  learnRate: number;
  epoch: number;
  epochStep: number;
}

export interface RollbackMessage {
  atStep: number;
  toStep: number;
  reason: string;
  lrScale: number;
  rollbacks: number;
}

export interface CheckpointMessage {
  seq: number;
  step: number;
  reason: CheckpointReason;
  /** The encoded checkpoint (checkpoint-file.ts). */
  checkpoint: Uint8Array;
  /** A1111's files for this step, the loss CSV included. */
  files: SavedFile[];
  /** Whether this save ends the run (completed, or stopped on request). */
  last: boolean;
}

export type ThreadMessage =
  | { type: 'ready'; engine: string }
  | ({ type: 'step'; id: number } & StepMessage)
  | ({ type: 'rollback'; id: number } & RollbackMessage)
  | { type: 'preview'; id: number; step: number; png: Uint8Array; infotext: string }
  | ({ type: 'checkpoint'; id: number } & CheckpointMessage)
  | { type: 'done'; id: number; status: 'completed' | 'stopped'; step: number; startStep: number; finalStep: number }
  | { type: 'error'; id: number; code: string; message: string; retryable: boolean };

/** The shared stop flag, index 0: checked by the training thread after every optimizer step. */
export const STOP_NONE = 0;
/** The job was cancelled: save, then end as cancelled. */
export const STOP_CANCEL = 1;
/** The trainer is shutting down: save, then hand the job back to the queue. */
export const STOP_SHUTDOWN = 2;
