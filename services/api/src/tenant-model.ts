import { join } from 'node:path';
import { isDarkroomError } from '@darkroom/core/errors.js';
import type { ModelConfig, ModelKind } from '@darkroom/core/model-files/config.js';
import type { TokenEncoder } from '@darkroom/core/networks/embeddings/database.js';
import type { Float32Tensor } from '@darkroom/core/tensor.js';
import { FarmError, resolveCheckpoint } from '@darkroom/farm';
import type { ApiContext } from './context.js';

/** What creating an embedding or hypernetwork takes from a checkpoint: its vocabulary, token table and layout. */
export interface ModelText {
  kind: ModelKind;
  tokenizer: TokenEncoder;
  /** The text encoder's token embedding matrix, (vocab, width). */
  tokenEmbeddings: Float32Tensor;
  config: ModelConfig;
}

/**
 * Reads a checkpoint the way a trainer loads it (the engine, the same vocabulary lookup), keeping only what a
 * create call needs. No graph is compiled and no session opened: loading reads the index, the token table and
 * the schedule. An uploaded checkpoint is fetched into the API's cache first (CACHE_DIR).
 */
export async function readModelText(ctx: ApiContext, tenant: string, model: string | null): Promise<ModelText> {
  const held = new Set<string>();
  try {
    const file = await resolveCheckpoint(
      { registry: ctx.registry, modelCache: ctx.modelCache, modelsDir: ctx.cfg.modelsDir }, tenant, model, held, 'sd_model_checkpoint',
    );
    // Imported here: the engine brings onnxruntime with it, which the API needs only for these rare calls.
    const { Engine } = await import('@darkroom/core/pipeline/engine.js');
    const engine = new Engine({ cacheDir: join(ctx.cfg.cacheDir, 'graphs') });
    try {
      const { sd, model: loaded, release } = await engine.acquireForTraining(file ? { path: file.path, name: file.name } : undefined);
      release();
      return { kind: sd.kind, tokenizer: loaded.tokenizer, tokenEmbeddings: sd.textEncoder.tokenEmbedding, config: sd.config };
    } finally {
      await engine.close();
    }
  } catch (e) {
    // An unloadable checkpoint (no vocabulary, an unknown layout) is about the tenant's setting, not a fault here.
    if (isDarkroomError(e)) throw new FarmError(e.code, 422, `sd_model_checkpoint: ${e.message}`, 'sd_model_checkpoint');
    throw e;
  } finally {
    ctx.modelCache.release(held);
  }
}
