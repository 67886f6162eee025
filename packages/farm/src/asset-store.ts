import { assetStorageKey, assetName, type AssetRecord, type AssetRegistry } from './assets.js';
import { sha256Hex } from './ids.js';
import type { AssetKind } from './schemas.js';
import type { Storage } from './storage/types.js';

/** Bytes to store: in memory (files the farm made) or a received file on disk (uploads, streamed to storage). */
export type AssetContent = { bytes: Uint8Array } | { path: string; sha256: string; size: number };

/**
 * Names `filename` in the tenant's registry after making sure its bytes are in storage (once by content hash).
 * The name claims the bytes before it looks for them, under the hash's lock, so a delete of the last other name
 * cannot remove them between the look and the claim; the bytes a replaced name referred to are released.
 * `described` is what the file says of itself that listings show (a LoRA's alias and metadata).
 */
export async function storeAssetContent(
  storage: Storage, registry: AssetRegistry, tenant: string, kind: AssetKind, filename: string, content: AssetContent,
  described: Pick<AssetRecord, 'alias' | 'metadata'> = {},
): Promise<AssetRecord> {
  const sha256 = 'bytes' in content ? sha256Hex(content.bytes) : content.sha256;
  const size = 'bytes' in content ? content.bytes.length : content.size;
  const name = assetName(filename);
  const key = assetStorageKey(kind, sha256);
  await registry.claim(kind, sha256, tenant, name);
  try {
    const stored = await registry.withHashLock(kind, sha256, () => storage.exists(key));
    // Written outside the lock: the claim above keeps any delete from judging these bytes unreferenced.
    if (!stored) await ('bytes' in content ? storage.put(key, content.bytes) : storage.putFile(key, content.path));
  } catch (e) {
    await registry.unclaim(kind, sha256, tenant, name);
    throw e;
  }
  const rec: AssetRecord = { name, filename, sha256, size, uploadedAt: new Date().toISOString(), ...described };
  const old = await registry.put(tenant, kind, rec);
  if (old && old.sha256 !== sha256) await releaseBytes(storage, registry, tenant, kind, old);
  return rec;
}

/**
 * Stores a file the farm made (a trained embedding or hypernetwork) exactly as an upload is stored: the bytes
 * once by content hash, the name in the tenant's registry. The next job naming it resolves the new hash, so it
 * is used at once, on any worker, with nothing to refresh.
 */
export function storeAsset(
  storage: Storage, registry: AssetRegistry, tenant: string, kind: AssetKind, filename: string, bytes: Uint8Array,
): Promise<AssetRecord> {
  return storeAssetContent(storage, registry, tenant, kind, filename, { bytes });
}

/**
 * Removes a tenant's name and, when no name of any tenant refers to its bytes any more, the bytes in storage.
 * Returns the removed record (null when there was none) and whether the bytes went.
 */
export async function deleteAsset(
  storage: Storage, registry: AssetRegistry, tenant: string, kind: AssetKind, name: string,
): Promise<{ record: AssetRecord; bytesDeleted: boolean } | null> {
  const record = await registry.remove(tenant, kind, name);
  if (!record) return null;
  return { record, bytesDeleted: await releaseBytes(storage, registry, tenant, kind, record) };
}

async function releaseBytes(storage: Storage, registry: AssetRegistry, tenant: string, kind: AssetKind, rec: AssetRecord): Promise<boolean> {
  await registry.unclaim(kind, rec.sha256, tenant, rec.name);
  return registry.withHashLock(kind, rec.sha256, async () => {
    if ((await registry.references(kind, rec.sha256)) > 0) return false;
    await storage.delete(assetStorageKey(kind, rec.sha256));
    return true;
  });
}
