import type { Redis } from 'ioredis';
import type { AssetCache } from './asset-cache.js';
import type { FarmKeys } from './keys.js';
import type { Logger } from './logger.js';
import { ASSET_KINDS, type AssetKind } from './schemas.js';

/**
 * Drops a worker's cached copy of asset bytes the API deleted from storage (the last name referring to them
 * went), so a delete frees the workers' disks too. `subscriber` becomes a subscriber connection (it can issue
 * nothing else afterwards). A message missed while reconnecting only leaves the copy to the cache's LRU.
 */
export async function watchAssetDeletions(subscriber: Redis, keys: FarmKeys, caches: readonly AssetCache[], log: Logger): Promise<() => Promise<void>> {
  subscriber.on('message', (channel: string, message: string) => {
    if (channel !== keys.assetDeletedChannel) return;
    const [kind, sha256] = message.split('/');
    if (!(ASSET_KINDS as readonly string[]).includes(kind ?? '') || !/^[0-9a-f]{64}$/.test(sha256 ?? '')) return;
    void Promise.all(caches.map((c) => c.forget(kind as AssetKind, sha256!))).then(
      (removed) => removed.some(Boolean) && log.info({ kind, sha256 }, 'deleted asset dropped from the cache'),
      (e: Error) => log.warn({ kind, sha256, err: e.message }, 'could not drop a deleted asset from the cache'),
    );
  });
  await subscriber.subscribe(keys.assetDeletedChannel);
  return async () => {
    await subscriber.quit().catch(() => undefined);
  };
}
