import { isDarkroomError } from '@darkroom/core/errors.js';
import { readModelText as readCheckpointModelText, type ModelText } from '@darkroom/core/pipeline/model-text.js';
import { FarmError, resolveCheckpoint } from '@darkroom/farm';
import type { ApiContext } from './context.js';

export type { ModelText };

/**
 * What a create call needs from the tenant's checkpoint (sd_model_checkpoint), read from the file the way the
 * engine loads it (core's pipeline/model-text.ts): no engine, graph or session. An uploaded checkpoint is fetched
 * into the API's cache first (CACHE_DIR).
 */
export async function readModelText(ctx: ApiContext, tenant: string, model: string | null): Promise<ModelText> {
  const held = new Set<string>();
  try {
    const file = await resolveCheckpoint(
      { registry: ctx.registry, modelCache: ctx.modelCache, modelsDir: ctx.cfg.modelsDir }, tenant, model, held, 'sd_model_checkpoint',
    );
    return await readCheckpointModelText(file?.path);
  } catch (e) {
    // An unloadable checkpoint (no vocabulary, an unknown layout) is about the tenant's setting, not a fault here.
    if (isDarkroomError(e)) throw new FarmError(e.code, 422, `sd_model_checkpoint: ${e.message}`, 'sd_model_checkpoint');
    throw e;
  } finally {
    ctx.modelCache.release(held);
  }
}
