import { assetStorageKey, assetName, type AssetRecord, type AssetRegistry } from './assets.js';
import { sha256Hex } from './ids.js';
import type { AssetKind } from './schemas.js';
import type { Storage } from './storage/types.js';

/**
 * Stores a file the farm made (a trained embedding or hypernetwork) exactly as an upload is stored: the bytes
 * once by content hash, the name in the tenant's registry. The next job naming it resolves the new hash, so it
 * is used at once, on any worker, with nothing to refresh.
 */
export async function storeAsset(
  storage: Storage, registry: AssetRegistry, tenant: string, kind: AssetKind, filename: string, bytes: Uint8Array,
): Promise<AssetRecord> {
  const sha256 = sha256Hex(bytes);
  const key = assetStorageKey(kind, sha256);
  if (!(await storage.exists(key))) await storage.put(key, bytes);
  const rec: AssetRecord = { name: assetName(filename), filename, sha256, size: bytes.length, uploadedAt: new Date().toISOString() };
  await registry.put(tenant, kind, rec);
  return rec;
}
