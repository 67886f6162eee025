import { isDatasetId, listDatasets, readManifest, type DatasetManifest } from './datasets.js';
import type { Storage } from './storage/types.js';

/**
 * A dataset a client names the way A1111 clients name a training folder: by its id, or by the name it was
 * uploaded under. Several uploads may share a name (a dataset uploaded again after a fix): the newest one is
 * meant, and ids, being ULIDs, sort by upload time.
 */
export async function findDataset(storage: Storage, tenant: string, ref: string): Promise<DatasetManifest | null> {
  if (isDatasetId(ref)) {
    const byId = await readManifest(storage, tenant, ref);
    if (byId) return byId;
  }
  const named = (await listDatasets(storage, tenant)).filter((m) => m.name === ref);
  return named.sort((a, b) => b.id.localeCompare(a.id))[0] ?? null;
}
