/**
 * A loaded Stable Diffusion model plus the tokenizer of its vocabulary: everything the pipeline runs on.
 */
import type { StableDiffusionModel } from '../models/load.js';
import type { ClipTokenizer } from '../text/tokenizer.js';
import type { PipelineModel, PipelineTokenizer } from './types.js';

/**
 * SD2's text encoder is OpenCLIP, whose tokenizer A1111 calls directly (open_clip's SimpleTokenizer: html
 * unescaping, no special-token split) instead of transformers' CLIPTokenizer path used for SD1.
 */
export function tokenizerFor(kind: StableDiffusionModel['kind'], tokenizer: ClipTokenizer): PipelineTokenizer {
  if (kind !== 'sd2') return tokenizer;
  return {
    bosId: tokenizer.bosId,
    eosId: tokenizer.eosId,
    commaId: tokenizer.commaId,
    encode: (text) => tokenizer.encodeOpenAi(text),
  };
}

export function pipelineModel(model: StableDiffusionModel, tokenizer: PipelineTokenizer): PipelineModel {
  const plain: PipelineModel = {
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
    // A1111 loads a checkpoint whose UNet takes 9 input channels with the inpainting config (hybrid conditioning)
    inpainting: model.config.unet.inChannels === 9,
    withCircularPadding: () => circular,
  };
  const circular: PipelineModel = { ...plain, unet: model.circular.unet, vae: model.circular.vae, withCircularPadding: () => circular };
  return plain;
}

/**
 * The model with some of its descriptive fields replaced for one job (the names a job gives its checkpoint and
 * VAE files), kept on the circular-padding form too.
 */
export function withModelFacts(model: PipelineModel, facts: Partial<Pick<PipelineModel, 'name' | 'vaeFile'>>): PipelineModel {
  const circular = model.withCircularPadding;
  return { ...model, ...facts, ...(circular ? { withCircularPadding: () => ({ ...circular(), ...facts }) } : {}) };
}
