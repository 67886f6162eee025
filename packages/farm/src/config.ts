import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  checkWeightsDtype, parseAttentionMode, parseMemoryMode, parseWeightsDtype, type AttentionMode, type MemoryMode, type WeightsDtype,
} from '@darkroom/core/catalog/engine-flags.js';
import { FarmError } from './errors.js';
import { sha256Hex } from './ids.js';

/*
 * The farm's settings, read from the environment once by loadConfig and split by who reads them: each service
 * takes its own view (ApiConfig, WorkerConfig, TrainerConfig), so a setting one service reads and another does not
 * shows in its type. docs/farm.md lists every variable in one table; nothing else configures the farm.
 */

/**
 * What every service reads: where Redis, storage, models and caches are, how often and how long jobs are retried and kept, how webhooks
 * are signed, how often heartbeats beat, and the memory a worker is sized to (the API admits jobs by it).
 */
export interface SharedConfig {
  /** LOG_LEVEL: pino's level (default info). */
  logLevel: string;
  jobBackoffMs: number;
  jobAttempts: number;
  publicUrl: string;
  redisUrl: string;
  queuePrefix: string;
  storageUrl: string;
  modelsDir: string;
  cacheDir: string;
  webhookSecret: string | undefined;
  webhookAllowlist: string[];
  webhookRetryBaseMs: number;
  webhookRetryWindowMs: number;
  retainCompletedS: number;
  retainFailedS: number;
  outputUrlTtlS: number;
  /**
 * Workers and trainers refresh their heartbeat this often; it expires after three intervals without one. */
  heartbeatIntervalMs: number;
  /** Declared pixels (width x height) of an init image or mask, checked from its header before decoding. */
  maxInputPixels: number;
  /** Peak memory a worker takes jobs up to (WORKER_MEMORY_BUDGET); null = the machine's memory less a margin. */
  workerMemoryBudget: number | null;
  /** Disk budget of checkpoints fetched from storage (uploads); MODELS_DIR files are used in place. */
  modelDiskCacheBytes: number;
  executionProvider: 'cpu' | 'cuda';
  /** How the worker's engine builds attention (ATTENTION: auto, plain, split, subquad, fused, or A1111's flag names). */
  attention: AttentionMode;
  /**
   * A1111's memory modes for the worker's engine (MEMORY_MODE: normal; medvram / --medvram: one of text encoder,
   * UNet and VAE resident at a time; lowvram / --lowvram: that, and the UNet run in slices opened in turn).
   */
  memoryMode: MemoryMode;
  /**
   * WEIGHTS_DTYPE float32 (default) or float16 (fp16, half): half-precision weights and compute for a GPU provider;
   * refused with EXECUTION_PROVIDER=cpu, whose kernels cast float16 back to float32 (models/weights-dtype.ts).
   */
  weightsDtype: WeightsDtype;
}

/** The API's own settings: its listener, tenants and keys, request and upload limits, sync waits.
 */
export interface ApiSettings {
  port: number;
  host: string;
  /**
 * API key -> tenant. Empty: the API serves one default tenant on loopback only. */
  apiKeys: Map<string, string>;
  adminKey: string | undefined;
  /** Deadline of each Redis command the API issues for a request; past it the request gets 503 REDIS_UNAVAILABLE. */
  redisTimeoutMs: number;
  rateLimitPerMinute: number;
  maxBodyBytes: number;
  maxUploadBytes: number;
  /** Bytes of uploads a tenant's names may account for, every kind summed (TENANT_QUOTA_BYTES); null = no quota. */
  tenantQuotaBytes: number | null;
  syncTimeoutMs: number;
  /** Event streams (SSE) one tenant may hold open at once on one API process. */
  sseMaxStreamsPerTenant: number;
  /** Training datasets: files kept per dataset (images and captions). */
  datasetMaxFiles: number;
  /** Zip entries or multipart parts per upload, ignored ones (folders, `__MACOSX/`, dotfiles) included. */
  datasetMaxEntries: number;
  /** Uncompressed bytes per dataset, and the largest upload body. */
  datasetMaxBytes: number;
  datasetMaxFileBytes: number;
  /** Checked from image headers, before any pixel is decoded. */
  datasetMaxImageSide: number;
  datasetMaxImagePixels: number;
}

/** What a process that runs jobs (a generation worker or a trainer) reads: its job locks, its engine, its caches,
 * its health port, and the webhook deliveries it runs beside its jobs.
 */
export interface JobRunnerSettings {
  /** WORKER_NAME: how events and logs name this process (default `<hostname>-<pid>`). */
  workerName: string;
  lockDurationMs: number;
  stalledIntervalMs: number;
  /**
 * Worker losses (stalls) a generation job may cause; at this many it is quarantined instead of retried. */
  maxStalledCount: number;
  workerPort: number;
  workerHost: string;
  /** With EXECUTION_PROVIDER=cuda: run on CPU when the CUDA provider cannot load, instead of failing. */
  fallbackToCpu: boolean;
  /**
   * ORT_INTRA_OP_THREADS: threads each onnxruntime session of the worker's engine uses within an op; unset (null),
   * onnxruntime's default of one per physical core. On a CPU host running N workers, 1 (or cores / N) keeps them
   * from contending for the same cores, so each worker stands for one device of its own.
   */
  ortIntraOpThreads: number | null;
  modelCacheBytes: number;
  networkCacheBytes: number;
  /** A live preview every N sampler steps (A1111's show_progress_every_n_steps); 0 = none. */
  previewEveryNSteps: number;
  /** How long a worker keeps retrying to store a finished render's outputs before the attempt fails. */
  storageRetryWindowMs: number;
  webhookDelivery: boolean;
  /** Total deadline of one delivery attempt (connect, send, answer), however the receiver paces its bytes. */
  webhookTimeoutMs: number;
  /** Delivery attempts running at once per delivery process. */
  webhookConcurrency: number;
  /** Delivery attempts of one tenant running at once across the farm, so its slow receivers cannot take every slot. */
  webhookTenantConcurrency: number;
}

/** The generation worker's own: warm-model routing and dynamic batching.
 */
export interface WorkerSettings {
  /**
   * WARM_ROUTING (default on): a worker hands back a job naming a checkpoint another live worker holds loaded, for
   * that worker to take (warm-routing.ts); off, every worker takes jobs in queue order (FIFO by fair share).
   */
  warmRouting: boolean;
  /** The longest a job is handed back for a warm worker, from its first hand-back; past it any worker takes it. */
  warmRoutingWaitMs: number;
  /** While the warm workers are busy, a job handed back for them is out of sight of other workers this long. */
  warmRoutingRetryMs: number;
  /**
   * BATCH_MAX (default 1 = off): a worker renders the job it claims together with up to BATCH_MAX - 1 compatible
   * waiting jobs in one UNet batch (batch-leases.ts). On the CPU provider the gain is small (bench/README.md).
   */
  batchMax: number;
  /** How long a worker's lease on a job it batches lasts unless renewed (renewed at a third of it). */
  batchLeaseMs: number;
}

export type ApiConfig = SharedConfig & ApiSettings;
/** A process that runs jobs: the trainer is one; the generation worker adds its own settings. */
export type JobRunnerConfig = SharedConfig & JobRunnerSettings;
export type TrainerConfig = JobRunnerConfig;
export type WorkerConfig = JobRunnerConfig & WorkerSettings;
/** Every setting, as loadConfig reads them; a service holds its own view of it. */
export type FarmConfig = ApiConfig & WorkerConfig;

export const DEFAULT_TENANT = 'default';

type Env = Readonly<Record<string, string | undefined>>;

function int(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    throw new FarmError('CONFIG_INVALID', 500, `${name} must be a number >= ${min}, got "${raw}"`, name);
  }
  return Math.floor(n);
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new FarmError('CONFIG_INVALID', 500, `${name} must be true or false, got "${raw}"`, name);
}

/**
 * `API_KEYS` is a comma-separated list of `tenant:key` pairs; a bare `key` gets a tenant named after the
 * key's hash, so keys never show up in logs or storage paths.
 */
export function parseApiKeys(raw: string | undefined): Map<string, string> {
  const keys = new Map<string, string>();
  for (const entry of (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const colon = entry.indexOf(':');
    const tenant = colon > 0 ? entry.slice(0, colon) : `t${sha256Hex(entry).slice(0, 12)}`;
    const key = colon > 0 ? entry.slice(colon + 1) : entry;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(tenant)) {
      throw new FarmError('CONFIG_INVALID', 500, `API_KEYS: tenant "${tenant}" must match [A-Za-z0-9_-]{1,64}`, 'API_KEYS');
    }
    if (key.length < 8) throw new FarmError('CONFIG_INVALID', 500, `API_KEYS: the key of tenant "${tenant}" is shorter than 8 characters`, 'API_KEYS');
    keys.set(key, tenant);
  }
  return keys;
}

function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === '::1' || host === 'localhost';
}

export function loadConfig(env: Env = process.env): FarmConfig {
  const apiKeys = parseApiKeys(env.API_KEYS);
  const host = env.HOST || (apiKeys.size === 0 ? '127.0.0.1' : '0.0.0.0');
  if (apiKeys.size === 0 && !isLoopback(host)) {
    throw new FarmError('CONFIG_INVALID', 500,
      `HOST=${host} without API_KEYS would serve everyone as one tenant; set API_KEYS or listen on 127.0.0.1`, 'HOST');
  }
  const port = int(env, 'PORT', 7860);
  const storageUrl = env.STORAGE_URL || pathToFileURL(resolve('.darkroom/storage')).href;
  const provider = (env.EXECUTION_PROVIDER ?? 'cpu').toLowerCase();
  if (provider !== 'cpu' && provider !== 'cuda') {
    throw new FarmError('CONFIG_INVALID', 500, `EXECUTION_PROVIDER must be cpu or cuda, got "${provider}"`, 'EXECUTION_PROVIDER');
  }
  let attention: AttentionMode;
  try {
    attention = parseAttentionMode(env.ATTENTION || 'auto');
  } catch (e) {
    throw new FarmError('CONFIG_INVALID', 500, `ATTENTION: ${(e as Error).message}`, 'ATTENTION');
  }
  let memoryMode: MemoryMode;
  try {
    memoryMode = parseMemoryMode(env.MEMORY_MODE || 'normal');
  } catch (e) {
    throw new FarmError('CONFIG_INVALID', 500, `MEMORY_MODE: ${(e as Error).message}`, 'MEMORY_MODE');
  }
  let weightsDtype: WeightsDtype;
  try {
    weightsDtype = parseWeightsDtype(env.WEIGHTS_DTYPE || 'float32');
    checkWeightsDtype(weightsDtype, provider === 'cuda' ? 'cuda' : 'cpu');
  } catch (e) {
    throw new FarmError('CONFIG_INVALID', 500, `WEIGHTS_DTYPE: ${(e as Error).message}`, 'WEIGHTS_DTYPE');
  }
  const prefix = env.QUEUE_PREFIX || 'bull';
  if (!/^[A-Za-z0-9_.-]+$/.test(prefix)) {
    throw new FarmError('CONFIG_INVALID', 500, 'QUEUE_PREFIX must match [A-Za-z0-9_.-]+', 'QUEUE_PREFIX');
  }
  return {
    logLevel: env.LOG_LEVEL || 'info',
    workerName: env.WORKER_NAME || `${hostname()}-${process.pid}`,
    port,
    host,
    publicUrl: (env.PUBLIC_URL || `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`).replace(/\/+$/, ''),
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    redisTimeoutMs: int(env, 'REDIS_TIMEOUT_MS', 2_000, 50),
    queuePrefix: prefix,
    storageUrl,
    modelsDir: resolve(env.MODELS_DIR || 'models'),
    cacheDir: resolve(env.CACHE_DIR || '.darkroom/cache'),
    apiKeys,
    adminKey: env.ADMIN_KEY || undefined,
    webhookSecret: env.WEBHOOK_SECRET || undefined,
    webhookAllowlist: (env.WEBHOOK_ALLOWLIST ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    webhookRetryBaseMs: int(env, 'WEBHOOK_RETRY_BASE_MS', 5_000, 1),
    webhookRetryWindowMs: int(env, 'WEBHOOK_RETRY_WINDOW_MS', 24 * 3600_000, 1),
    webhookTimeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 1),
    webhookConcurrency: int(env, 'WEBHOOK_CONCURRENCY', 8, 1),
    webhookTenantConcurrency: int(env, 'WEBHOOK_TENANT_CONCURRENCY', 2, 1),
    sseMaxStreamsPerTenant: int(env, 'SSE_MAX_STREAMS_PER_TENANT', 20, 1),
    storageRetryWindowMs: int(env, 'STORAGE_RETRY_WINDOW_MS', 30 * 60_000, 0),
    rateLimitPerMinute: int(env, 'RATE_LIMIT_PER_MINUTE', 600),
    maxBodyBytes: int(env, 'MAX_BODY_BYTES', 50 * 1024 * 1024, 1024),
    maxUploadBytes: int(env, 'MAX_UPLOAD_BYTES', 8 * 1024 * 1024 * 1024, 1024),
    tenantQuotaBytes: env.TENANT_QUOTA_BYTES ? int(env, 'TENANT_QUOTA_BYTES', 0, 0) : null,
    jobAttempts: int(env, 'JOB_ATTEMPTS', 3, 1),
    jobBackoffMs: int(env, 'JOB_BACKOFF_MS', 2_000),
    lockDurationMs: int(env, 'LOCK_DURATION_MS', 30_000, 1000),
    stalledIntervalMs: int(env, 'STALLED_INTERVAL_MS', 30_000, 500),
    maxStalledCount: int(env, 'MAX_STALLED_COUNT', 2, 1),
    workerMemoryBudget: env.WORKER_MEMORY_BUDGET ? int(env, 'WORKER_MEMORY_BUDGET', 0, 64 * 1024 ** 2) : null,
    heartbeatIntervalMs: int(env, 'HEARTBEAT_INTERVAL_MS', 5_000, 100),
    warmRouting: bool(env, 'WARM_ROUTING', true),
    warmRoutingWaitMs: int(env, 'WARM_ROUTING_WAIT_MS', 5_000, 0),
    warmRoutingRetryMs: int(env, 'WARM_ROUTING_RETRY_MS', 250, 10),
    batchMax: int(env, 'BATCH_MAX', 1, 1),
    batchLeaseMs: int(env, 'BATCH_LEASE_MS', 30_000, 300),
    retainCompletedS: int(env, 'RETAIN_COMPLETED_S', 7 * 86400),
    retainFailedS: int(env, 'RETAIN_FAILED_S', 30 * 86400),
    syncTimeoutMs: int(env, 'SYNC_TIMEOUT_MS', 10 * 60_000, 1),
    outputUrlTtlS: int(env, 'OUTPUT_URL_TTL_S', 3600, 1),
    workerPort: int(env, 'WORKER_PORT', 9464),
    workerHost: env.WORKER_HOST || '0.0.0.0',
    webhookDelivery: bool(env, 'WEBHOOK_DELIVERY', true),
    executionProvider: provider,
    attention,
    memoryMode,
    weightsDtype,
    ortIntraOpThreads: env.ORT_INTRA_OP_THREADS ? int(env, 'ORT_INTRA_OP_THREADS', 0, 1) : null,
    fallbackToCpu: bool(env, 'FALLBACK_TO_CPU', false),
    modelCacheBytes: int(env, 'MODEL_CACHE_BYTES', 8 * 1024 ** 3),
    previewEveryNSteps: int(env, 'PREVIEW_EVERY_N_STEPS', 0),
    networkCacheBytes: int(env, 'NETWORK_CACHE_BYTES', 512 * 1024 ** 2),
    modelDiskCacheBytes: int(env, 'MODEL_DISK_CACHE_BYTES', 64 * 1024 ** 3),
    datasetMaxFiles: int(env, 'DATASET_MAX_FILES', 10_000, 1),
    datasetMaxEntries: int(env, 'DATASET_MAX_ENTRIES', 20_000, 1),
    datasetMaxBytes: int(env, 'DATASET_MAX_BYTES', 2 * 1024 ** 3, 1024),
    datasetMaxFileBytes: int(env, 'DATASET_MAX_FILE_BYTES', 64 * 1024 ** 2, 1024),
    datasetMaxImageSide: int(env, 'DATASET_MAX_IMAGE_SIDE', 8192, 1),
    datasetMaxImagePixels: int(env, 'DATASET_MAX_IMAGE_PIXELS', 8192 * 8192, 1),
    maxInputPixels: int(env, 'MAX_INPUT_PIXELS', 4096 * 4096, 1),
  };
}
