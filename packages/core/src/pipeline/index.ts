/**
 * txt2img / img2img as A1111 runs them, and the Engine that owns models and sessions.
 *
 * ```ts
 * const engine = new Engine({ checkpoint: 'models/v1-5-pruned-emaonly.safetensors' }); // none = demo model
 * const r = await engine.txt2img({ prompt: 'a castle', steps: 20, sampler_name: 'DPM++ 2M', seed: 42 },
 *                                { onStep: (e) => console.log(e.step, e.steps), signal });
 * // r.images: PNG bytes with the A1111 `parameters` infotext; r.infotexts, r.seeds, r.subseeds
 * ```
 */
export { Engine, pngInfo, type EngineOptions, type EngineJobOptions, type NamedFile, type PngInfo } from './engine.js';
export { txt2img } from './txt2img.js';
export { batchKey, certainlyOneChunk, renderBatch, type BatchJobFiles } from './request-batch.js';
export { HIRES_UPSCALERS } from '../catalog/upscalers.js';
export { img2img } from './img2img.js';
export { DEFAULT_INFOTEXT_VERSION, type GenerateOptions, type GenerationResult, type ProgressEvent } from './job.js';
export {
  DEFAULT_SETTINGS,
  resolveImg2Img,
  resolveTxt2Img,
  unknownSettings,
  type Img2ImgParams,
  type InitImage,
  type OverrideSettings,
  type RandnSource,
  type Txt2ImgParams,
} from './params.js';
export { pipelineModel } from './model.js';
export { ensureDemoModel, DEMO_MODEL_NAME } from './demo-model.js';
export type { PipelineModel, JobNetworks, HypernetworkProvider, ConditioningEmbedding, UpscalerLookup } from './types.js';
export {
  DEFAULT_UPSCALE_TILING,
  ModelUpscaler,
  loadModelUpscaler,
  readUpscalerStateDict,
  resizeWithUpscaler,
  rrdbWeightsFrom,
  upscaleBy,
  upscaleWithModel,
  type UpscaleTiling,
} from './upscalers.js';
export { inferRrdb, type RrdbConfig, type RrdbLayout } from '../model-files/rrdbnet.js';
export type { PipelineTrace } from './trace.js';
export { latentPreview, latentPreviewPng } from './preview.js';
