import type { AssetCache } from './asset-cache.js';
import { BUILTIN_MODEL, listModelsDir, type AssetRegistry } from './assets.js';
import { FarmError } from './errors.js';
import { sha256Hex } from './ids.js';

/** A checkpoint file as an engine thread opens it; null stands for the built-in model. */
export interface CheckpointFile {
  path: string;
  /** The name infotexts and trained files record: the tenant's upload name or A1111's model_name. */
  name: string;
  sha256: string;
  size: number;
}

export interface CheckpointSources {
  registry: AssetRegistry;
  /** Uploaded checkpoints are fetched from storage into this cache. */
  modelCache: AssetCache;
  modelsDir: string;
}

/**
 * The file behind a checkpoint name a job carries: the tenant's upload (fetched by content hash and held for
 * `held`'s job), else a MODELS_DIR file, else the built-in model for null or its own name.
 */
export async function resolveCheckpoint(
  src: CheckpointSources, tenant: string, name: string | null, held: Set<string>, field = 'model',
): Promise<CheckpointFile | null> {
  const found = await findCheckpoint(src, tenant, name, field);
  if (!found) return null;
  if (found.upload) return { ...found.file, path: await src.modelCache.fetch('models', found.file.sha256, found.upload, held) };
  return found.file;
}

/**
 * The identity of the checkpoint a job names, without fetching it: its `sha256` as resolveCheckpoint gives it (the
 * upload's content hash, a MODELS_DIR file's path and size), which warm routing matches against what workers hold;
 * null for the built-in model.
 */
export async function checkpointIdentity(
  src: Omit<CheckpointSources, 'modelCache'>, tenant: string, name: string | null,
): Promise<string | null> {
  return (await findCheckpoint(src, tenant, name, 'model'))?.file.sha256 ?? null;
}

/** The checkpoint behind a name; `upload` is the stored file name when its bytes must be fetched from storage. */
async function findCheckpoint(
  src: Omit<CheckpointSources, 'modelCache'>, tenant: string, name: string | null, field: string,
): Promise<{ file: CheckpointFile; upload?: string } | null> {
  if (name === null || name === BUILTIN_MODEL) return null;
  const uploaded = await src.registry.get(tenant, 'models', name);
  if (uploaded) return { file: { path: '', name: uploaded.name, sha256: uploaded.sha256, size: uploaded.size }, upload: uploaded.filename };
  const local = (await listModelsDir(src.modelsDir)).find((m) => m.modelName === name || m.relativePath === name);
  if (local) {
    // Local checkpoints are identified by path and size for the engine LRU; A1111's hash is the engine's to compute.
    return { file: { path: local.path, name: local.modelName, sha256: sha256Hex(`${local.path}\0${local.size}`), size: local.size } };
  }
  throw new FarmError('MODEL_NOT_FOUND', 404, `model "${name}" is neither uploaded nor in MODELS_DIR`, field);
}
