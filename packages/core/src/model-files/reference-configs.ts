/**
 * The configs of the model shapes Darkroom knows without reading a checkpoint: its built-in model, its
 * random-weight tiny model and the full-size SD 1.x (v1-inference.yaml, CLIP ViT-L/14) and SD 2.x (v2-inference-v.yaml, OpenCLIP
 * ViT-H/14) models. They let a memory estimate be made for a job before any weights are read; a loaded
 * checkpoint's own config (inferModelConfig) is always the truth for everything else.
 */
import type { ModelConfig, ScheduleConfig, VaeConfig } from './config.js';

const SCHEDULE: ScheduleConfig = { linearStart: 0.00085, linearEnd: 0.012, timesteps: 1000 };

const FULLSIZE_VAE: VaeConfig = {
  inChannels: 3, outChannels: 3, ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4, embedDim: 4, attnLevels: [],
};

/**
 * The built-in checkpoint (catalog/built-in-model.ts, trained from scratch in training/scene-training.ts), as
 * inferModelConfig reads it with its config. The scale factor is the one measured when its VAE was trained; it
 * changes with the weights, and nothing that reads this config without the checkpoint (memory estimates) uses it.
 */
export const BUILTIN_MODEL_CONFIG: ModelConfig = {
  kind: 'sd1',
  parameterization: 'v',
  scaleFactor: 0.2838626801967621,
  schedule: SCHEDULE,
  unet: {
    inChannels: 4, outChannels: 4, modelChannels: 64, channelMult: [1, 2], numResBlocks: 1, attentionResolutions: [1, 2],
    numHeads: 4, numHeadChannels: -1, contextDim: 32, transformerDepth: 1, useLinearInTransformer: false, legacy: false,
  },
  vae: { inChannels: 3, outChannels: 3, ch: 32, chMult: [2, 2, 2, 2], numResBlocks: 1, zChannels: 4, embedDim: 4, attnLevels: [] },
  text: {
    layout: 'hf-clip', prefix: 'cond_stage_model.transformer.text_model.', width: 32, heads: 4, layers: 2, intermediate: 64,
    activation: 'quick_gelu', vocabSize: 760, maxPositions: 77, layerNormEps: 1e-5, padTokenId: 759, defaultClipSkip: 1,
  },
};

/** Darkroom's random-weight tiny checkpoint (pipeline/demo-model.ts), as inferModelConfig reads it with its config. */
export const DEMO_MODEL_CONFIG: ModelConfig = {
  kind: 'sd1',
  parameterization: 'eps',
  scaleFactor: 0.18215,
  schedule: SCHEDULE,
  unet: {
    inChannels: 4, outChannels: 4, modelChannels: 32, channelMult: [1, 2], numResBlocks: 2, attentionResolutions: [1, 2],
    numHeads: 4, numHeadChannels: -1, contextDim: 32, transformerDepth: 1, useLinearInTransformer: false, legacy: false,
  },
  vae: { inChannels: 3, outChannels: 3, ch: 32, chMult: [1, 2, 2, 2], numResBlocks: 1, zChannels: 4, embedDim: 4, attnLevels: [] },
  text: {
    layout: 'hf-clip', prefix: 'cond_stage_model.transformer.text_model.', width: 32, heads: 4, layers: 3, intermediate: 64,
    activation: 'quick_gelu', vocabSize: 672, maxPositions: 77, layerNormEps: 1e-5, padTokenId: 671, defaultClipSkip: 1,
  },
};

export const SD1_CONFIG: ModelConfig = {
  kind: 'sd1',
  parameterization: 'eps',
  scaleFactor: 0.18215,
  schedule: SCHEDULE,
  unet: {
    inChannels: 4, outChannels: 4, modelChannels: 320, channelMult: [1, 2, 4, 4], numResBlocks: 2, attentionResolutions: [1, 2, 4],
    numHeads: 8, numHeadChannels: -1, contextDim: 768, transformerDepth: 1, useLinearInTransformer: false, legacy: false,
  },
  vae: FULLSIZE_VAE,
  text: {
    layout: 'hf-clip', prefix: 'cond_stage_model.transformer.text_model.', width: 768, heads: 12, layers: 12, intermediate: 3072,
    activation: 'quick_gelu', vocabSize: 49408, maxPositions: 77, layerNormEps: 1e-5, padTokenId: 49407, defaultClipSkip: 1,
  },
};

export const SD2_CONFIG: ModelConfig = {
  kind: 'sd2',
  parameterization: 'v',
  scaleFactor: 0.18215,
  schedule: SCHEDULE,
  unet: {
    inChannels: 4, outChannels: 4, modelChannels: 320, channelMult: [1, 2, 4, 4], numResBlocks: 2, attentionResolutions: [1, 2, 4],
    numHeads: -1, numHeadChannels: 64, contextDim: 1024, transformerDepth: 1, useLinearInTransformer: true, legacy: false,
  },
  vae: FULLSIZE_VAE,
  text: {
    layout: 'open-clip', prefix: 'cond_stage_model.model.', width: 1024, heads: 16, layers: 24, intermediate: 4096,
    activation: 'gelu', vocabSize: 49408, maxPositions: 77, layerNormEps: 1e-5, padTokenId: 0, defaultClipSkip: 2,
  },
};
