import {
  assetKindOf, assetStorageKey, readDataset, resolveCheckpoint, type CheckpointSources, type Storage, type TrainJobData,
} from '@darkroom/farm';
import type { DatasetFile } from '@darkroom/core/training/dataset.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { TrainRequest } from './train-protocol.js';
import { DarkroomError } from '@darkroom/core/errors.js';

export interface InputSources extends CheckpointSources {
  storage: Storage;
  checkpoints: CheckpointStore;
}

/** The dataset as the folder A1111 trains from: every file under its name, captions beside their images. */
async function datasetFiles(storage: Storage, data: TrainJobData): Promise<DatasetFile[]> {
  const ds = await readDataset(storage, data.tenant, data.request.dataset);
  if (!ds) throw new DarkroomError('DATASET_NOT_FOUND', `dataset ${data.request.dataset} is gone`, { field: 'dataset' });
  return Promise.all(ds.manifest.files.map(async (f) => ({ name: f.name, bytes: await ds.read(f.name) })));
}

async function pinnedAsset(storage: Storage, data: TrainJobData): Promise<TrainRequest['continueFrom']> {
  const pin = data.continueFrom;
  if (!pin) return null;
  const bytes = await storage.get(assetStorageKey(assetKindOf(data.request.kind), pin.sha256));
  if (!bytes) throw new DarkroomError('ASSET_MISSING', `${data.request.kind} ${pin.filename} (${pin.sha256}) is not in storage`, { field: 'continue_from' });
  return { filename: pin.filename, bytes };
}

/**
 * Everything a training thread needs, fetched on the main thread: the checkpoint file (cached by hash, held for
 * the job), the dataset, the pinned asset, the checkpoint of the training this one continues and this job's own
 * latest checkpoint, if an earlier attempt stored one.
 */
export async function loadTrainingInputs(src: InputSources, jobId: string, data: TrainJobData, held: Set<string>): Promise<TrainRequest> {
  const [checkpoint, files, continueFrom, parentCheckpoint, ownCheckpoint] = await Promise.all([
    resolveCheckpoint(src, data.tenant, data.request.model, held),
    datasetFiles(src.storage, data),
    pinnedAsset(src.storage, data),
    data.resume ? src.checkpoints.read(data.tenant, data.resume.from) : Promise.resolve(null),
    src.checkpoints.read(data.tenant, jobId),
  ]);
  if (data.resume && !parentCheckpoint) {
    throw new DarkroomError('CHECKPOINT_MISSING', `training ${data.resume.from} has no stored checkpoint to continue from`);
  }
  return {
    jobId,
    request: data.request,
    checkpoint: checkpoint ? { path: checkpoint.path, name: checkpoint.name } : null,
    files,
    continueFrom,
    parentCheckpoint,
    ownCheckpoint,
  };
}
