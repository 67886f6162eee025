import { createServer } from 'node:http';
import { join } from 'node:path';
import {
  AssetCache, AssetRegistry, connectRedis, createLogger, farmKeys, loadConfig, openQueues, openStorage, webhookMasterSecret, type FarmQueues,
} from '@darkroom/farm';
import { createApp } from './app.js';
import type { ApiContext } from './context.js';
import { createApiMetrics } from './metrics.js';

async function main(): Promise<void> {
  const cfg = loadConfig();
  const log = createLogger('api');
  const keys = farmKeys(cfg.queuePrefix);
  const redis = connectRedis(cfg.redisUrl, { name: 'darkroom-api' });
  const bull = connectRedis(cfg.redisUrl, { blocking: true, name: 'darkroom-api-bull' });
  let queues: FarmQueues | undefined;
  const metrics = createApiMetrics(() => queues);
  queues = openQueues(cfg, bull);
  const storage = openStorage(cfg.storageUrl);
  const ctx: ApiContext = {
    cfg, redis, keys, queues, log, metrics, storage,
    newBlockingRedis: () => connectRedis(cfg.redisUrl, { blocking: true, name: 'darkroom-api-reader' }),
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
    void Promise.all([queues.close(), redis.quit(), bull.quit()]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
