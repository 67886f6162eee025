/**
 * What creating an embedding or hypernetwork takes from a checkpoint: its vocabulary, token-embedding matrix and
 * layout. Read from the same files with the same readers as the engine's load (checkpoint-files.ts,
 * model-files/text-encoder.ts), without loading the model: no graph is built and no session opened, so a caller
 * (the API) loads no engine code for it.
 */
import { readCheckpointText } from '../model-files/text-encoder.js';
import type { ModelConfig, ModelKind } from '../model-files/config.js';
import type { Float32Tensor } from '../tensor.js';
import { checkpointFiles } from './checkpoint-files.js';
import { tokenizerFor } from './model.js';
import type { PipelineTokenizer } from './types.js';

export interface ModelText {
  readonly kind: ModelKind;
  /** The tokenizer the engine would use for this checkpoint (SD2's is OpenCLIP's encoding). */
  readonly tokenizer: PipelineTokenizer;
  /** The text encoder's token embedding matrix, (vocab, width). */
  readonly tokenEmbeddings: Float32Tensor;
  /**
   * The config as the file and its explicit config give it. The engine may go on to settle an SD2 checkpoint's
   * eps or v parameterization by running its UNet; that is left out here, as it needs the model loaded.
   */
  readonly config: ModelConfig;
}

/**
 * `checkpoint`: a file, or undefined for the built-in model, as the engine reads them; `vocabulary` an explicit
 * vocabulary folder, as EngineOptions.vocabulary.
 */
export async function readModelText(checkpoint: string | undefined, options: { vocabulary?: string } = {}): Promise<ModelText> {
  const files = await checkpointFiles(checkpoint ?? '', options.vocabulary);
  const { config, tokenEmbedding } = await readCheckpointText(files.path, files.config);
  return { kind: config.kind, tokenizer: tokenizerFor(config.kind, files.tokenizer), tokenEmbeddings: tokenEmbedding, config };
}
