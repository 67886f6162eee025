/**
 * The files A1111's trainers write (`Embedding.save` + `save_embedding`, `Hypernetwork.save` +
 * `save_hypernetwork`), built from plain data, and what a resumed run takes back from them.
 *
 * Steps: `step` is always A1111's `embedding.step` / `hypernetwork.step`, the number of optimizer steps done.
 * A1111 labels intermediate saves with `step + 1` (`steps_done`): the file `name-6.pt` holds the state after 5
 * steps and stores `step` 5; the final `name.pt` stores the steps done.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { DarkroomError } from '../errors.js';
import { PyDict, type PyValue } from '../formats/pickle/values.js';
import { readTorch, writeTorchFile } from '../formats/torch.js';
import type { Embedding } from '../networks/embeddings/embedding.js';
import { embeddingChecksum } from '../networks/embeddings/embedding.js';
import { embeddingPayload } from '../networks/embeddings/save.js';
import type { Hypernetwork } from '../networks/hypernetworks/hypernetwork.js';
import { hypernetworkPayload } from '../networks/hypernetworks/save.js';
import type { Float32Tensor } from '../tensor.js';
import type { AdamWState } from './adamw-state.js';
import { adamwStateDict, adamwStateFromDict } from './optimizer-state-dict.js';

/** The checkpoint a run trained on, as A1111 records it: `shorthash` = sha256[:10], `modelName` = file stem. */
export interface CheckpointInfo {
  readonly shorthash: string;
  readonly modelName: string;
}

export type SaveKind = 'intermediate' | 'final';

export interface SaveNaming {
  readonly fileName: string;
  /** The `name` field inside the file. */
  readonly storedName: string;
  readonly step: number;
}

export interface SavedFile {
  readonly fileName: string;
  readonly bytes: Uint8Array;
}

/**
 * Whether A1111 writes an intermediate save after an optimizer step that leaves `step` steps done. Its trigger is
 * `steps_done = step + 1` taken after the increment, so `name-N.pt` is written after N-1 steps, not N.
 */
export function isIntermediateSave(step: number, every: number): boolean {
  return every > 0 && (step + 1) % every === 0;
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) throw new DarkroomError('TRAINING_BAD_STEP', `a training step count must be a whole number >= 0, got ${step}`);
}

/** Embeddings: an intermediate save is named and stored as `name-<step+1>`. */
export function embeddingSaveNaming(baseName: string, step: number, kind: SaveKind): SaveNaming {
  checkStep(step);
  const stored = kind === 'final' ? baseName : `${baseName}-${step + 1}`;
  return { fileName: `${stored}.pt`, storedName: stored, step };
}

/** Hypernetworks: the intermediate file is `name-<step+1>.pt`, but the name stored inside stays the base name. */
export function hypernetworkSaveNaming(baseName: string, step: number, kind: SaveKind): SaveNaming {
  checkStep(step);
  return { fileName: kind === 'final' ? `${baseName}.pt` : `${baseName}-${step + 1}.pt`, storedName: baseName, step };
}

/** torch.save's zip root: the file name up to its last extension (torch 1.13). */
function archiveNameOf(fileName: string): string {
  const dot = fileName.lastIndexOf('.');
  return dot > 0 ? fileName.slice(0, dot) : fileName;
}

function save(fileName: string, payload: PyValue): SavedFile {
  return { fileName, bytes: writeTorchFile(payload, { archiveName: archiveNameOf(fileName) }) };
}

export interface EmbeddingSave {
  readonly baseName: string;
  /** The trained vectors, (n, width). */
  readonly vec: Float32Tensor;
  readonly step: number;
  readonly kind: SaveKind;
  readonly checkpoint: CheckpointInfo;
}

/** The embedding a save describes, with the stored name and metadata (what loading the file back gives). */
export function savedEmbedding(s: EmbeddingSave): Embedding {
  const naming = embeddingSaveNaming(s.baseName, s.step, s.kind);
  return {
    name: naming.storedName,
    vec: s.vec,
    vectors: s.vec.shape[0]!,
    width: s.vec.shape[1]!,
    step: naming.step,
    sdCheckpoint: s.checkpoint.shorthash,
    sdCheckpointName: s.checkpoint.modelName,
    filename: naming.fileName,
    hash: '',
    shorthash: '',
  };
}

/** The `.pt` dict; the vectors are pickled with requires_grad=True, as the training tensor is. */
export function embeddingTrainingPayload(s: EmbeddingSave): PyDict {
  return embeddingPayload(savedEmbedding(s), { requiresGrad: true });
}

export function embeddingTrainingPt(s: EmbeddingSave): SavedFile {
  return save(embeddingSaveNaming(s.baseName, s.step, s.kind).fileName, embeddingTrainingPayload(s));
}

/** `{"hash": checksum of the saved vectors, "optimizer_state_dict": ...}`. */
export function embeddingOptimPayload(vec: Float32Tensor, state: AdamWState): PyDict {
  return new PyDict([
    ['hash', embeddingChecksum(vec)],
    ['optimizer_state_dict', adamwStateDict(state, [vec.shape])],
  ]);
}

export function embeddingTrainingOptim(s: EmbeddingSave, state: AdamWState): SavedFile {
  return save(`${embeddingSaveNaming(s.baseName, s.step, s.kind).fileName}.optim`, embeddingOptimPayload(s.vec, state));
}

export interface HypernetworkSave {
  /** The hypernetwork with its trained parameters and its creation settings. */
  readonly hn: Hypernetwork;
  readonly baseName: string;
  readonly step: number;
  readonly kind: SaveKind;
  readonly checkpoint: CheckpointInfo;
}

export function hypernetworkTrainingPayload(s: HypernetworkSave): PyDict {
  const naming = hypernetworkSaveNaming(s.baseName, s.step, s.kind);
  return hypernetworkPayload({
    ...s.hn,
    name: naming.storedName,
    step: naming.step,
    sdCheckpoint: s.checkpoint.shorthash,
    sdCheckpointName: s.checkpoint.modelName,
  });
}

export function hypernetworkTrainingPt(s: HypernetworkSave): SavedFile {
  return save(hypernetworkSaveNaming(s.baseName, s.step, s.kind).fileName, hypernetworkTrainingPayload(s));
}

/** Parameter shapes in A1111's optimizer order (`Hypernetwork.weights()`): per width, k then v, Sequential order. */
export function hypernetworkParameterShapes(hn: Hypernetwork): number[][] {
  const shapes: number[][] = [];
  for (const pair of hn.layers.values()) {
    for (const module of pair) {
      for (const layer of module.layers) {
        const p = module.params.get(layer.index);
        if (!p) continue;
        shapes.push([...p.weight.shape]);
        if (p.bias) shapes.push([...p.bias.shape]);
      }
    }
  }
  return shapes;
}

/** A1111's hypernetwork shorthash: the first 10 hex digits of the file's sha256. */
export function hypernetworkFileHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 10);
}

/**
 * The `hash` a hypernetwork `.optim` carries. A1111 hashes the file the hypernetwork was loaded from, at the time
 * of the save (its hash cache re-reads a file whose mtime moved): intermediate saves go elsewhere and carry the
 * loaded file's hash, while the final save overwrites the loaded file and so carries the hash of the new `.pt`.
 * `loadedHash` may be the full sha256 or its first 10 digits.
 */
export function hypernetworkOptimHash(p: {
  readonly loadedPath: string;
  readonly loadedHash: string;
  readonly savedPath: string;
  readonly savedBytes: Uint8Array;
}): string {
  return resolve(p.loadedPath) === resolve(p.savedPath) ? hypernetworkFileHash(p.savedBytes) : p.loadedHash.slice(0, 10);
}

/** `{"optimizer_name": "AdamW", "hash": ..., "optimizer_state_dict": ...}` (state index = optimizer order). */
export function hypernetworkOptimPayload(hn: Hypernetwork, state: AdamWState, hash: string): PyDict {
  return new PyDict([
    ['optimizer_name', 'AdamW'],
    ['hash', hash],
    ['optimizer_state_dict', adamwStateDict(state, hypernetworkParameterShapes(hn))],
  ]);
}

export function hypernetworkTrainingOptim(s: HypernetworkSave, state: AdamWState, hash: string): SavedFile {
  return save(`${hypernetworkSaveNaming(s.baseName, s.step, s.kind).fileName}.optim`, hypernetworkOptimPayload(s.hn, state, hash));
}

/** What an `.optim` file holds, before deciding whether it applies. */
export interface OptimFile {
  /** Embeddings: 4 hex digits (vector checksum); hypernetworks: 10 (file hash). Null when absent. */
  readonly hash: string | null;
  /** Hypernetwork files name their optimizer class; embedding files do not. */
  readonly optimizerName: string | null;
  readonly stateDict: PyValue | undefined;
  readonly source: string;
}

export async function readOptimFile(bytes: Uint8Array, source: string): Promise<OptimFile> {
  const { value } = await readTorch(bytes, source);
  if (!(value instanceof PyDict)) throw new DarkroomError('TRAINING_BAD_OPTIM', `${source}: an .optim file holds a dict`, { file: source });
  const hash = value.get('hash');
  const name = value.get('optimizer_name');
  return {
    hash: typeof hash === 'string' ? hash : null,
    optimizerName: typeof name === 'string' ? name : null,
    stateDict: value.get('optimizer_state_dict'),
    source,
  };
}

function loadedState(optim: OptimFile, sizes: readonly number[]): AdamWState | null {
  // A1111 tests the dict for truth: a missing or empty state dict means a fresh optimizer.
  if (optim.stateDict === undefined || optim.stateDict === null || (optim.stateDict instanceof PyDict && optim.stateDict.size === 0)) return null;
  return adamwStateFromDict(optim.stateDict, optim.source, sizes);
}

/**
 * The optimizer state a resumed embedding run starts from: the file's, when its hash equals the checksum of the
 * loaded vectors, else null (AdamW starts from zero). The state's `lr` is the last lr of the earlier run; A1111
 * keeps it until the schedule next changes the rate. A1111 looks at `.optim` files only when its option
 * save_optimizer_state is on (off by default); that choice is the caller's.
 */
export function embeddingResumeState(optim: OptimFile, vec: Float32Tensor): AdamWState | null {
  if (optim.hash !== embeddingChecksum(vec)) return null;
  return loadedState(optim, [vec.data.length]);
}

/**
 * The optimizer state a resumed hypernetwork run starts from: the file's, when its hash equals the shorthash of
 * the loaded `.pt` (true for the final save of a run, never for intermediate saves), else null. Another optimizer
 * class is refused: A1111 would train with it, which is not implemented here.
 */
export function hypernetworkResumeState(optim: OptimFile, loadedFileHash: string, hn: Hypernetwork): AdamWState | null {
  if (optim.hash === null || optim.hash !== loadedFileHash.slice(0, 10)) return null;
  const state = loadedState(optim, hypernetworkParameterShapes(hn).map((s) => s.reduce((a, b) => a * b, 1)));
  if (state && (optim.optimizerName ?? 'AdamW') !== 'AdamW') {
    throw new DarkroomError('TRAINING_OPTIMIZER_UNSUPPORTED', `${optim.source}: saved with optimizer ${optim.optimizerName}; only AdamW is supported`, {
      file: optim.source,
      optimizer: optim.optimizerName,
    });
  }
  return state;
}
