import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  AssetCache, AssetRegistry, connectRedis, createLogger, redisReady, farmKeys, loadConfig, type ApiConfig, openQueues, openStorage, throttledErrorLog, webhookMasterSecret,
  type FarmQueues,
} from '@darkroom/farm';
import { openFlowQueues } from '@darkroom/farm/flows.js';
import { createApp } from './app.js';
import type { ApiContext } from './context.js';
import { EventHub } from './event-hub.js';
import { createApiMetrics } from './metrics.js';
import { TenantStreamLimit } from './stream-limit.js';

async function main(): Promise<void> {
  const cfg: ApiConfig = loadConfig();
  const log = createLogger('api', cfg.logLevel);
  const keys = farmKeys(cfg.queuePrefix);
  // Both connections answer requests, so both have the command deadline: the API's queues only add, read and
  // remove jobs (no blocking commands), which BullMQ allows on such a connection.
  const redis = connectRedis(cfg.redisUrl, { role: 'request', timeoutMs: cfg.redisTimeoutMs, name: 'darkroom-api', log });
  const bull = connectRedis(cfg.redisUrl, { role: 'request', timeoutMs: cfg.redisTimeoutMs, name: 'darkroom-api-bull', log });
  // Neither takes a command before it is ready (no offline queue): the API waits for Redis rather than fail.
  await Promise.all([redisReady(redis), redisReady(bull)]);
  let queues: FarmQueues | undefined;
  const metrics = createApiMetrics(() => queues);
  queues = openQueues(cfg, bull);
  for (const q of [queues.generate, queues.train, queues.webhooks]) q.on('error', throttledErrorLog(log, `queue ${q.name}: redis error`));
  const storage = openStorage(cfg.storageUrl);
  const flows = openFlowQueues(cfg, bull);
  flows.flows.on('error', throttledErrorLog(log, 'queue flows: redis error'));
  const ctx: ApiContext = {
    cfg, redis, bull, keys, queues, flows, log, metrics, storage,
    events: await EventHub.open(connectRedis(cfg.redisUrl, { role: 'blocking', name: 'darkroom-api-events', log }), keys),
    streams: new TenantStreamLimit(cfg.sseMaxStreamsPerTenant),
    modelCache: new AssetCache(storage, join(cfg.cacheDir, 'assets'), cfg.modelDiskCacheBytes, metrics.cacheRequests),
    registry: new AssetRegistry(redis, keys),
    masterSecret: await webhookMasterSecret(cfg, redis, keys),
  };
  const server = createServer(createApp(ctx));
  // Synchronous /sdapi calls wait for their render; don't let Node's default request timeout cut them off.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, resolve);
  });
  log.info({ host: cfg.host, port: cfg.port, tenants: cfg.apiKeys.size || 'default (no API_KEYS)', storage: ctx.storage.driver }, 'api listening');

  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    server.close();
    server.closeAllConnections();
    void Promise.all([queues.close(), flows.close(), ctx.events.close(), redis.quit(), bull.quit()]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
