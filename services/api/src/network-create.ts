import { randomInt } from 'node:crypto';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { createEmbedding } from '@darkroom/core/networks/embeddings/create.js';
import type { Embedding } from '@darkroom/core/networks/embeddings/embedding.js';
import { saveEmbeddingPt } from '@darkroom/core/networks/embeddings/save.js';
import { createHypernetwork } from '@darkroom/core/networks/hypernetworks/create.js';
import type { Hypernetwork } from '@darkroom/core/networks/hypernetworks/hypernetwork.js';
import { saveHypernetworkPt } from '@darkroom/core/networks/hypernetworks/save.js';
import { KeyedStream } from '@darkroom/core/training/keyed-random.js';
import {
  a1111FileName, attentionWidths, createdInfo, createErrorInfo, FarmError, HypernetworkCreate, storeAsset, type SdapiCreateEmbedding,
  type SdapiCreateHypernetwork, type TrainingKind,
} from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { tenantCheckpoint, tenantOptions } from './sdapi-options.js';
import { readModelText, type ModelText } from './tenant-model.js';

/**
 * A1111's `create_embedding` and `create_hypernetwork` for a tenant: the new file is stored like an upload and
 * registered under its name, so a txt2img can name it and `/sdapi/v1/train/*` can train it at once. The
 * answers are A1111's info texts, its refusal of an existing name without `overwrite_old` included.
 */

async function tenantModelText(ctx: ApiContext, tenant: string): Promise<ModelText> {
  return readModelText(ctx, tenant, await tenantCheckpoint(ctx, tenant, await tenantOptions(ctx, tenant)));
}

/** A1111's refusal to replace a file, worded as its assertion is; null when the name is free or may be replaced. */
async function existing(ctx: ApiContext, tenant: string, kind: TrainingKind, name: string, overwrite: boolean): Promise<string | null> {
  if (overwrite) return null;
  const rec = await ctx.registry.get(tenant, kind === 'embedding' ? 'embeddings' : 'hypernetworks', name);
  return rec ? createErrorInfo(kind, `file ${a1111FileName(kind, name)} already exists`) : null;
}

/** The engine's refusal of a create argument, as a 400 naming that argument. */
function refused(e: unknown, field: string): unknown {
  return isDarkroomError(e) ? new FarmError(e.code, 400, `${field}: ${e.message}`, field) : e;
}

export async function createEmbeddingFile(ctx: ApiContext, tenant: string, body: SdapiCreateEmbedding): Promise<string> {
  const taken = await existing(ctx, tenant, 'embedding', body.name, body.overwrite_old);
  if (taken) return taken;
  const text = await tenantModelText(ctx, tenant);
  let embedding: Embedding;
  try {
    embedding = createEmbedding({
      name: body.name, vectors: body.num_vectors_per_token, initText: body.init_text, tokenizer: text.tokenizer,
      tokenEmbeddings: text.tokenEmbeddings, truncateInitTokens: text.kind !== 'sd2',
    });
  } catch (e) {
    throw refused(e, 'init_text');
  }
  const rec = await storeAsset(ctx.storage, ctx.registry, tenant, 'embeddings', `${body.name}.pt`, saveEmbeddingPt(embedding));
  ctx.log.info({ tenant, name: rec.name, sha256: rec.sha256, vectors: embedding.vectors }, 'embedding created');
  return createdInfo('embedding', a1111FileName('embedding', body.name));
}

export async function createHypernetworkFile(ctx: ApiContext, tenant: string, body: SdapiCreateHypernetwork): Promise<string> {
  const taken = await existing(ctx, tenant, 'hypernetwork', body.name, body.overwrite_old);
  if (taken) return taken;
  // A1111's None for these means its defaults: left out, so the /v1 schema's defaults (the same ones) apply.
  const given = Object.fromEntries(Object.entries({
    layer_structure: body.layer_structure, activation_func: body.activation_func, weight_initialization: body.weight_init,
    add_layer_norm: body.add_layer_norm, use_dropout: body.use_dropout, dropout_structure: body.dropout_structure,
  }).filter(([, v]) => v !== null));
  const c = HypernetworkCreate.parse(given);
  const sizes = body.enable_sizes ?? attentionWidths((await tenantModelText(ctx, tenant)).config);
  let hypernetwork: Hypernetwork;
  try {
    hypernetwork = createHypernetwork({
      name: body.name, sizes, layerStructure: c.layer_structure, activationFunc: c.activation_func, weightInit: c.weight_initialization,
      addLayerNorm: c.add_layer_norm, useDropout: c.use_dropout, dropoutStructure: c.dropout_structure, activateOutput: false,
      // A1111 draws the initial weights from torch's global generator: a fresh seed each call.
      random: new KeyedStream(randomInt(0, 2 ** 32), 'hypernetwork-init'),
    });
  } catch (e) {
    throw refused(e, isDarkroomError(e) && /dropout/i.test(e.message) ? 'dropout_structure' : 'layer_structure');
  }
  const rec = await storeAsset(ctx.storage, ctx.registry, tenant, 'hypernetworks', `${body.name}.pt`, saveHypernetworkPt(hypernetwork));
  ctx.log.info({ tenant, name: rec.name, sha256: rec.sha256, sizes: hypernetwork.sizes }, 'hypernetwork created');
  return createdInfo('hypernetwork', a1111FileName('hypernetwork', body.name));
}
