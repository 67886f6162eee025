import type { Redis } from 'ioredis';
import type { AssetCache, AssetRegistry, FarmConfig, FarmKeys, FarmQueues, Logger, Storage } from '@darkroom/farm';
import type { ApiMetrics } from './metrics.js';

export interface ApiContext {
  cfg: FarmConfig;
  redis: Redis;
  /** Duplicated per blocking reader (SSE, synchronous /sdapi calls). */
  newBlockingRedis: () => Redis;
  keys: FarmKeys;
  queues: FarmQueues;
  storage: Storage;
  registry: AssetRegistry;
  /** Uploaded checkpoints fetched from storage, for `/sdapi/v1/create/*`, which read the tenant's checkpoint. */
  modelCache: AssetCache;
  log: Logger;
  masterSecret: string;
  metrics: ApiMetrics;
}
