/**
 * The text side of a checkpoint read straight from the file: its config (inferred from the tensors, with the
 * explicit config's overrides) and the text encoder's token embedding matrix. loadModel reads the same two
 * things the same way when it loads the whole model; this reads them without building or opening anything.
 */
import type { Float32Tensor } from '../tensor.js';
import { openCheckpoint, readFloat32, type CheckpointSource, type ReadTiming } from './checkpoint.js';
import { readConfigOverrides } from './config-file.js';
import { inferModelConfig, tokenEmbeddingKey, type ModelConfig, type TextEncoderConfig } from './config.js';

/** The token id -> embedding row matrix (vocab, D) of a checkpoint's text encoder. */
export function readTokenEmbedding(source: CheckpointSource, text: TextEncoderConfig, timing?: ReadTiming): Promise<Float32Tensor> {
  return readFloat32(source, tokenEmbeddingKey(text), timing);
}

export interface CheckpointText {
  readonly config: ModelConfig;
  readonly tokenEmbedding: Float32Tensor;
}

/** `config`: the explicit config (a JSON or ldm yaml path, or the parsed object), as loadModel takes it. */
export async function readCheckpointText(checkpoint: string, config?: string | object): Promise<CheckpointText> {
  const overrides = await readConfigOverrides(config, checkpoint);
  const source = await openCheckpoint(checkpoint);
  try {
    const inferred = inferModelConfig(source.index, overrides);
    return { config: inferred, tokenEmbedding: await readTokenEmbedding(source, inferred.text) };
  } finally {
    await source.close();
  }
}
