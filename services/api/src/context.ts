import type { Redis } from 'ioredis';
import type { AssetRegistry, FarmConfig, FarmKeys, FarmQueues, Logger, Storage } from '@darkroom/farm';
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
  log: Logger;
  masterSecret: string;
  metrics: ApiMetrics;
}
