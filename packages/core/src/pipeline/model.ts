/**
 * A loaded Stable Diffusion model plus the tokenizer of its vocabulary: everything the pipeline runs on.
 */
import type { StableDiffusionModel } from '../models/load.js';
import type { PipelineModel, PipelineTokenizer } from './types.js';

export function pipelineModel(model: StableDiffusionModel, tokenizer: PipelineTokenizer): PipelineModel {
  return {
    kind: model.kind,
    name: model.name,
    sha256: model.sha256,
    parameterization: model.parameterization,
    alphasCumprod: model.alphasCumprod,
    scaleFactor: model.scaleFactor,
    textEncoder: model.textEncoder,
    unet: model.unet,
    vae: model.vae,
    tokenizer,
  };
}
