import type { Redis } from 'ioredis';
import type { AssetCache, AssetRegistry, ApiConfig, EventContext, FarmKeys, FarmQueues, Logger, Storage } from '@darkroom/farm';
import type { FlowQueues } from '@darkroom/farm/flows.js';
import type { EventHub } from './event-hub.js';
import type { ApiMetrics } from './metrics.js';
import type { TenantStreamLimit } from './stream-limit.js';

export interface ApiContext {
  cfg: ApiConfig;
  redis: Redis;
  /** The connection the API's queues share (BullMQ's): a request needs it ready as much as `redis`. */
  bull: Redis;
  /** The one subscriber to job events, shared by every SSE stream and waiting synchronous /sdapi call. */
  events: EventHub;
  /** Open SSE streams per tenant (SSE_MAX_STREAMS_PER_TENANT). */
  streams: TenantStreamLimit;
  keys: FarmKeys;
  queues: FarmQueues;
  /** The flows' parent queue and the producer that adds a parent with its children. */
  flows: FlowQueues;
  storage: Storage;
  registry: AssetRegistry;
  /** Uploaded checkpoints fetched from storage, for `/sdapi/v1/create/*`, which read the tenant's checkpoint. */
  modelCache: AssetCache;
  log: Logger;
  masterSecret: string;
  metrics: ApiMetrics;
}

/** What writing a job's events and queueing their webhooks needs, from the API's context. */
export function eventContext(ctx: ApiContext): EventContext {
  return { redis: ctx.redis, keys: ctx.keys, webhooks: ctx.queues.webhooks, retentionS: ctx.cfg.retainFailedS };
}
