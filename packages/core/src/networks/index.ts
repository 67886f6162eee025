/**
 * Networks a job brings: textual-inversion embeddings and hypernetworks, in every file format A1111 reads.
 *
 * ```ts
 * const cache = new NetworkCache();
 * const db = new EmbeddingDatabase(tokenizer, model.textEncoder.width);
 * db.add(await cache.embedding(bytes, 'pekora.pt'));                  // EMBEDDING_WIDTH_MISMATCH if it does not fit
 * const hn = await cache.hypernetwork(hnBytes, 'anime.pt');
 * const variant = hypernetworkVariant([{ hypernetwork: hn, multiplier: 0.8 }]);
 * await model.unet.run(x, t, cond, cond, variant);                     // one compile per architecture chain
 * ```
 */
export { type Embedding, embeddingFromData, embeddingChecksum } from './embeddings/embedding.js';
export { loadEmbedding, loadEmbeddingFile, isEmbeddingFileName, EMBEDDING_TEXT_KEY } from './embeddings/load.js';
export { EmbeddingDatabase, type EmbeddingLookup, type TokenEncoder } from './embeddings/database.js';
export { createEmbedding, type CreateEmbeddingOptions } from './embeddings/create.js';
export { embeddingPayload, saveEmbeddingPt, saveEmbeddingSafetensors, saveEmbeddingPng } from './embeddings/save.js';
export {
  type Hypernetwork,
  type HypernetworkArchitecture,
  type HypernetworkLayer,
  type HypernetworkModule,
  type HypernetworkActivation,
  HYPERNETWORK_ACTIVATIONS,
  loadHypernetwork,
  loadHypernetworkFile,
  hypernetworkFromData,
  moduleLayers,
  parseDropoutStructure,
  architectureOf,
} from './hypernetworks/hypernetwork.js';
export { applyHypernetworks, type HypernetworkApplication } from './hypernetworks/reference.js';
export {
  hypernetworkHook,
  hypernetworkVariant,
  hypernetworkGraphKey,
  hypernetworkInputs,
  declaredHypernetworkInputs,
  feedsFor,
  type HypernetworkInput,
} from './hypernetworks/graph.js';
export { hypernetworkPayload, saveHypernetworkPt } from './hypernetworks/save.js';
export { sanitizeNetworkName } from './names.js';
export { createHypernetwork, type CreateHypernetworkOptions, type RandomSource, type WeightInit } from './hypernetworks/create.js';
export { NetworkCache, sha256Hex, type NetworkCacheOptions } from './cache.js';
