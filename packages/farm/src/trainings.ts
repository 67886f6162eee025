import type { TrainingKind, TrainingRequest } from './training-schemas.js';

/**
 * What a training job is on the `train` queue and where its results live in storage:
 *
 *   trainings/<tenant>/<jobId>/checkpoint.safetensors   the latest checkpoint (replaced whole at each save)
 *   trainings/<tenant>/<jobId>/files/<A1111 file name>  .pt, .pt.optim, .safetensors, .png, the loss CSV
 *   trainings/<tenant>/<jobId>/images/<name>-<step>.png previews
 *
 * File names come from the training's name, which the schema limits to storage-safe characters.
 */

/** An uploaded or trained asset pinned by content hash, so every attempt of a job trains the same bytes. */
export interface AssetPin {
  name: string;
  filename: string;
  sha256: string;
}

export interface TrainJobData {
  tenant: string;
  /** The validated request, seeds drawn, the model name resolved (null = the built-in model). */
  request: TrainingRequest;
  /** What `continue_from` named when the training was accepted. */
  continueFrom: AssetPin | null;
  /** Set when this training continues another one from that one's final checkpoint (at `step`). */
  resume: { from: string; step: number } | null;
  /** Images in the dataset when accepted; batch_size was checked against it. */
  datasetImages: number;
  requestHash: string;
  submittedAt: number;
}

export type TrainedAssetKind = 'embeddings' | 'hypernetworks';

export interface TrainJobResult {
  asset: AssetPin & { kind: TrainedAssetKind };
  step: number;
  worker: string;
  attempt: number;
  trainMs: number;
}

/** Why a checkpoint was stored: the save interval, a rollback after a non-finite loss, a stop, the end. */
export type CheckpointReason = 'interval' | 'rollback' | 'stopped' | 'final';

/** One stored checkpoint, as the trainer records it once the checkpoint and its files are in storage. */
export interface TrainingSaveRecord {
  step: number;
  reason: CheckpointReason;
  at: string;
  /** A1111 file names written for this checkpoint (under `files/`); none for a rollback. */
  files: string[];
}

export function assetKindOf(kind: TrainingKind): TrainedAssetKind {
  return kind === 'embedding' ? 'embeddings' : 'hypernetworks';
}

export function trainingPrefix(tenant: string, jobId: string): string {
  return `trainings/${tenant}/${jobId}/`;
}

export function trainingCheckpointKey(tenant: string, jobId: string): string {
  return `${trainingPrefix(tenant, jobId)}checkpoint.safetensors`;
}

export function trainingFileKey(tenant: string, jobId: string, fileName: string): string {
  return `${trainingPrefix(tenant, jobId)}files/${fileName}`;
}

export function trainingImageKey(tenant: string, jobId: string, fileName: string): string {
  return `${trainingPrefix(tenant, jobId)}images/${fileName}`;
}

/** A preview's file name after `step` steps, labelled as A1111 labels it (steps done plus one). */
export function previewFileName(name: string, step: number): string {
  return `${name}-${step + 1}.png`;
}

/** A1111's loss log name per kind. */
export function lossCsvName(kind: TrainingKind): string {
  return kind === 'embedding' ? 'textual_inversion_loss.csv' : 'hypernetwork_loss.csv';
}
