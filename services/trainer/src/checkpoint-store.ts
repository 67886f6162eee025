import type { Redis } from 'ioredis';
import {
  previewFileName, trainingCheckpointKey, trainingFileKey, trainingImageKey, trainingLogKey, type FarmKeys, type Storage, type TrainingKind,
  type TrainingSaveRecord,
} from '@darkroom/farm';
import type { CheckpointMessage } from './train-protocol.js';

const CONTENT_TYPES: Record<string, string> = { png: 'image/png', csv: 'text/csv', safetensors: 'application/octet-stream' };

function contentType(fileName: string): string {
  return CONTENT_TYPES[fileName.slice(fileName.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
}

/** A training's A1111-style log folder (its `log_directory`): the kind and name place each file in it. */
export interface TrainingLog {
  prefix: string;
  kind: TrainingKind;
  name: string;
}

/**
 * A training's results in storage, and in Redis its save log and an index of its files (so reading a training's
 * state never lists storage). A checkpoint is written after its files, so a
 * stored checkpoint always has its files beside it; each write replaces a whole key (a folder write is a temp
 * file renamed, an S3 put is atomic), so a trainer killed mid-write leaves the previous checkpoint intact.
 */
export class CheckpointStore {
  constructor(
    private readonly storage: Storage,
    private readonly redis: Redis,
    private readonly keys: FarmKeys,
    private readonly retentionS: number,
  ) {}

  /** A training's latest checkpoint, or null when it has stored none. */
  read(tenant: string, jobId: string): Promise<Uint8Array | null> {
    return this.storage.get(trainingCheckpointKey(tenant, jobId));
  }

  async store(tenant: string, jobId: string, m: CheckpointMessage, log: TrainingLog | null = null): Promise<TrainingSaveRecord> {
    for (const f of m.files) await this.storage.put(trainingFileKey(tenant, jobId, f.fileName), f.bytes, contentType(f.fileName));
    // Before the checkpoint too: a checkpoint in storage means every copy of its files is there.
    if (log) {
      for (const f of m.files) await this.storage.put(trainingLogKey(log.prefix, log.kind, log.name, f.fileName, 'files'), f.bytes, contentType(f.fileName));
    }
    await this.storage.put(trainingCheckpointKey(tenant, jobId), m.checkpoint, 'application/octet-stream');
    const record: TrainingSaveRecord = { step: m.step, reason: m.reason, at: new Date().toISOString(), files: m.files.map((f) => f.fileName) };
    const saves = this.keys.trainingSaves(jobId);
    const index = this.keys.trainingFiles(jobId);
    const tx = this.redis.multi().rpush(saves, JSON.stringify(record)).expire(saves, this.retentionS);
    for (const f of m.files) tx.hset(index, `files/${f.fileName}`, String(m.step));
    await tx.expire(index, this.retentionS).exec();
    return record;
  }

  async storePreview(tenant: string, jobId: string, name: string, step: number, png: Uint8Array, log: TrainingLog | null = null): Promise<string> {
    const fileName = previewFileName(name, step);
    const key = trainingImageKey(tenant, jobId, fileName);
    await this.storage.put(key, png, 'image/png');
    if (log) await this.storage.put(trainingLogKey(log.prefix, log.kind, log.name, fileName, 'images'), png, 'image/png');
    const index = this.keys.trainingFiles(jobId);
    await this.redis.multi().hset(index, `images/${fileName}`, String(step)).expire(index, this.retentionS).exec();
    return key;
  }
}
