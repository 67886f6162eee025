import { isDarkroomError } from '@darkroom/core/errors.js';
import { loadEmbedding } from '@darkroom/core/networks/embeddings/load.js';
import { assetStorageKey, BUILTIN_MODEL } from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { findModel, listModels } from './models.js';
import { tenantCheckpoint, tenantOptions } from './sdapi-options.js';
import { readModelText } from './tenant-model.js';

/** A1111's EmbeddingItem. */
export interface EmbeddingItem {
  step: number | null;
  sd_checkpoint: string | null;
  sd_checkpoint_name: string | null;
  shape: number;
  vectors: number;
}

type FileMeta = EmbeddingItem | null;

/**
 * What a file says about itself never changes for its content hash, nor a checkpoint's text-encoder width for its
 * identity: both are read once per API process (an embedding is small; a checkpoint's index and token table are
 * read as a create call reads them) and kept, bounded, so listing stays cheap.
 */
const MEMO_LIMIT = 4096;
const fileMeta = new Map<string, FileMeta>();
const checkpointWidth = new Map<string, number | null>();

function remember<K, V>(m: Map<K, V>, k: K, v: V): V {
  if (m.size >= MEMO_LIMIT) m.delete(m.keys().next().value as K);
  m.set(k, v);
  return v;
}

async function embeddingMeta(ctx: ApiContext, sha256: string, filename: string): Promise<FileMeta> {
  if (fileMeta.has(sha256)) return fileMeta.get(sha256)!;
  const bytes = await ctx.storage.get(assetStorageKey('embeddings', sha256));
  if (!bytes) return null;
  try {
    const e = await loadEmbedding(bytes, filename);
    return remember(fileMeta, sha256, { step: e.step, sd_checkpoint: e.sdCheckpoint, sd_checkpoint_name: e.sdCheckpointName, shape: e.width, vectors: e.vectors });
  } catch (err) {
    // A1111 leaves a file it cannot read out of both lists (and logs it); so does this listing.
    if (!isDarkroomError(err)) throw err;
    return remember(fileMeta, sha256, null);
  }
}

/** The width embeddings must have for the tenant's checkpoint (sd_model_checkpoint); null when it cannot be read. */
async function expectedWidth(ctx: ApiContext, tenant: string): Promise<number | null> {
  const options = await tenantOptions(ctx, tenant);
  let model: string | null;
  try {
    model = await tenantCheckpoint(ctx, tenant, options);
  } catch {
    return null;
  }
  const entry = model === null ? null : findModel(await listModels(ctx.registry, ctx.cfg.modelsDir, tenant), model);
  const identity = entry === null ? BUILTIN_MODEL : entry ? `${entry.source}\0${entry.sha256 ?? entry.filename}\0${entry.size ?? ''}` : null;
  if (identity === null) return null;
  if (checkpointWidth.has(identity)) return checkpointWidth.get(identity)!;
  try {
    const text = await readModelText(ctx, tenant, model);
    return remember(checkpointWidth, identity, text.tokenEmbeddings.shape[1] ?? null);
  } catch (err) {
    ctx.log.warn({ tenant, model, err: err instanceof Error ? err.message : String(err) }, 'checkpoint width unknown; embeddings listed as loaded');
    return null;
  }
}

/**
 * A1111's `/sdapi/v1/embeddings`: the tenant's embeddings whose vector width fits the tenant's checkpoint are
 * `loaded`, the others `skipped` (A1111 skips them for the model it has loaded), each with what its file records.
 */
export async function embeddingListing(ctx: ApiContext, tenant: string): Promise<{ loaded: Record<string, EmbeddingItem>; skipped: Record<string, EmbeddingItem> }> {
  const records = await ctx.registry.list(tenant, 'embeddings');
  const loaded: Record<string, EmbeddingItem> = {};
  const skipped: Record<string, EmbeddingItem> = {};
  if (records.length === 0) return { loaded, skipped };
  const width = await expectedWidth(ctx, tenant);
  for (const rec of records) {
    const meta = await embeddingMeta(ctx, rec.sha256, rec.filename);
    if (!meta) continue;
    if (width === null || meta.shape === width) loaded[rec.name] = meta;
    else skipped[rec.name] = meta;
  }
  return { loaded, skipped };
}
