/**
 * What txt2img and img2img share: the per-iteration loop of A1111's process_images_inner (prompts, seeds,
 * extra networks, conditioning with caching, noise generators), decoding to 8-bit images, the infotext and
 * the PNG, progress and cancellation.
 */
import { DarkroomError, throwIfCancelled } from '../errors.js';
import { float32, type Float32Tensor } from '../tensor.js';
import { encodePng, type RasterImage } from '../formats/png.js';
import { createInfotext, pyFloat, type InfotextValue } from '../formats/infotext.js';
import { ImageRNG, noiseSourceFromA1111, type NoiseSource } from '../sampling/rng/image-rng.js';
import { resolveSamplerAndScheduler } from '../sampling/samplers.js';
import { findSampler, type ExtraParams } from './sample.js';
import { encodeTexts, learnedConditioning, multicondLearnedConditioning, type TextContext } from './conditioning.js';
import { parseBatchExtraNetworks, hypernetworkUses } from './extra-networks.js';
import { decodedToRgb8 } from './image.js';
import { jobSeeds, type JobSeeds } from './seeds.js';
import { unknownSettings, type OverrideSettings, type ResolvedCommon } from './params.js';
import type { MultiCond, ScheduledCond } from './cfg-denoiser.js';
import type { PipelineTrace } from './trace.js';
import type { JobNetworks, PipelineModel, UNetVariant } from './types.js';

/** The version string written to infotexts: A1111's, so that parity holds and A1111 reads our images as its own. */
export const DEFAULT_INFOTEXT_VERSION = 'v1.10.1';

export interface ProgressEvent {
  /** Completed sampler steps over the whole job (all iterations and passes). */
  readonly step: number;
  readonly steps: number;
  /** Batch iteration (0-based, of n_iter). */
  readonly iteration: number;
  readonly pass: 'first' | 'hires';
  /**
   * The sampler's current denoised estimate of the batch (B,4,h,w), where the sampler reports one. It is the
   * sampler's working buffer: use it inside the callback (e.g. `latentPreview`) or copy it.
   */
  readonly denoised?: Float32Tensor;
}

export interface GenerateOptions {
  readonly networks?: JobNetworks;
  readonly onStep?: (e: ProgressEvent) => void;
  /** Cancels between sampler steps (and between stages) with a DarkroomError 'CANCELLED' (errors.ts throwIfCancelled). */
  readonly signal?: AbortSignal;
  readonly trace?: PipelineTrace;
  /** Source of random seeds for seed / subseed -1 (tests pin it). */
  readonly random?: () => number;
  /** The infotext's Version (default v1.10.1, the A1111 release the parity data comes from). */
  readonly version?: string;
  /** Use torch's portable CPU normal kernel instead of the x86 AVX2 one for randn_source CPU. */
  readonly portableCpuNoise?: boolean;
  /** A1111's interrupt and skip, which end sampling early and keep what it reached (`signal` discards the job). */
  readonly stop?: StopControl;
  /**
   * Infotext fields that extra networks activated before the job add (`Lora hashes`): recorded where A1111's
   * activation does, after the fields the job's setup writes and before those of the conditioning.
   */
  readonly extraGenerationParams?: ReadonlyArray<readonly [string, string]>;
  /**
   * Several requests rendered as one batch (request-batch.ts): per image, its own prompt, negative prompt and
   * fixed seeds in place of the request's prompt and `seed + i`. One entry per image (batch_size * n_iter).
   */
  readonly perImage?: ReadonlyArray<ImageRequest>;
}

/** One image's own part of a batch of requests; seeds are fixed (never -1). */
export interface ImageRequest {
  readonly prompt: string;
  readonly negative_prompt: string;
  readonly seed: number;
  readonly subseed: number;
  /** Hires fix's own prompts ('' or absent: the image's prompt / negative prompt, as for a solo request). */
  readonly hr_prompt?: string;
  readonly hr_negative_prompt?: string;
}

/**
 * A1111's `state.interrupted` / `state.skipped`, asked after every sampler step. Either stops the sampler and takes
 * its latest denoised estimate (A1111's `last_latent`) as the iteration's result, without a hires pass; the
 * iteration's images are decoded and written as usual. After `interrupt` no further iteration runs; after `skip`
 * the next one does, and `skipped()` says the skip was used up.
 */
export interface StopControl {
  requested(): 'interrupt' | 'skip' | null;
  skipped(): void;
}

/**
 * The end of an iteration under a StopControl: true when the job must stop here (interrupt), after clearing a
 * skip that was honoured (A1111 clears `state.skipped` when the next iteration starts).
 */
export function stopAfterIteration(stop: StopControl | undefined): boolean {
  const r = stop?.requested() ?? null;
  if (r === 'skip') stop!.skipped();
  return r === 'interrupt';
}

export interface GenerationResult {
  /** PNG bytes with the `parameters` text chunk, one per image. */
  readonly images: Uint8Array[];
  readonly infotexts: string[];
  readonly seeds: number[];
  readonly subseeds: number[];
  /** The request as it ran: random seeds filled in, sampler/scheduler resolved. */
  readonly parameters: Record<string, unknown>;
  /** Final latents per image (sampler space), for callers that continue from them. */
  readonly latents: Float32Tensor[];
}


/** Per-job state that lives across iterations. */
export interface JobState {
  readonly model: PipelineModel;
  readonly params: ResolvedCommon;
  readonly samplerName: string;
  readonly scheduler: string;
  readonly seeds: JobSeeds;
  readonly allPrompts: string[];
  readonly allNegativePrompts: string[];
  readonly noiseSource: NoiseSource;
  readonly text: TextContext;
  readonly extra: ExtraParams;
  readonly opts: GenerateOptions;
  emptyCond: Float32Tensor | undefined;
  /** get_conds_with_caching: conds reused while prompts and steps stay the same. */
  condCache: Map<string, MultiCond[] | ScheduledCond[][]>;
  stepsDone: number;
  readonly stepsTotal: number;
  /** The UNet gets inpainting image conditioning (the infotext then has `Conditional mask weight`). */
  usesInpaintingConditioning: boolean;
}

export function startJob(model: PipelineModel, params: ResolvedCommon, opts: GenerateOptions, stepsPerIteration: number): JobState {
  const resolved = resolveSamplerAndScheduler(params.sampler_name, params.scheduler, false);
  findSampler(resolved.sampler.name);
  const n = params.batch_size * params.n_iter;
  const per = opts.perImage;
  if (per && per.length !== n) {
    throw new DarkroomError('BAD_PARAMS', `perImage has ${per.length} entries for ${n} images`, { field: 'perImage', value: per.length });
  }
  const text: TextContext = {
    model,
    tokenizer: model.tokenizer,
    ...(opts.networks?.embeddings ? { embeddings: opts.networks.embeddings } : {}),
    // A1111's SD2 text encoder always takes the penultimate layer; "Clip skip" only acts on SD1
    clipSkip: model.kind === 'sd2' ? (model.textEncoder.defaultClipSkip ?? 2) : params.settings.CLIP_stop_at_last_layers,
    emphasis: params.settings.emphasis,
    commaPaddingBacktrack: params.settings.comma_padding_backtrack,
    generationParams: new Map(),
    ...(params.prompt_blending ? { promptBlending: true } : {}),
    ...(opts.trace?.onTextCall ? { onTextCall: (t) => opts.trace!.onTextCall!(t) } : {}),
  };
  return {
    model,
    params,
    samplerName: resolved.sampler.name,
    scheduler: resolved.scheduler,
    seeds: per ? perImageSeeds(per) : jobSeeds(params, opts.random),
    allPrompts: per ? per.map((r) => r.prompt) : new Array<string>(n).fill(params.prompt),
    allNegativePrompts: per ? per.map((r) => r.negative_prompt) : new Array<string>(n).fill(params.negative_prompt),
    noiseSource: noiseSourceFromA1111(params.settings.randn_source, { portableCpu: opts.portableCpuNoise ?? false }),
    text,
    extra: new Map(),
    opts,
    emptyCond: undefined,
    condCache: new Map(),
    stepsDone: 0,
    stepsTotal: stepsPerIteration * params.n_iter,
    usesInpaintingConditioning: false,
  };
}

function perImageSeeds(per: ReadonlyArray<ImageRequest>): JobSeeds {
  return { seed: per[0]!.seed, subseed: per[0]!.subseed, allSeeds: per.map((r) => r.seed), allSubseeds: per.map((r) => r.subseed) };
}

/** Prompt schedules are built over steps * 2 for samplers that call the model twice per step. */
export function scheduleSteps(samplerName: string, steps: number): number {
  return findSampler(samplerName).secondOrder ? steps * 2 : steps;
}

export interface IterationConds {
  readonly conds: MultiCond[];
  readonly unconds: ScheduledCond[][];
  readonly variant: UNetVariant | undefined;
}

/**
 * Extra networks and conditioning of one batch: tags removed from the prompts (the first prompt's tags are
 * activated), the uncond then the cond, cached across iterations like get_conds_with_caching.
 */
export async function batchConditioning(
  job: JobState,
  prompts: readonly string[],
  negativePrompts: readonly string[],
  steps: number,
  hiresSteps: number | undefined,
): Promise<IterationConds> {
  const { texts, calls } = job.params.disable_extra_networks ? { texts: [...prompts], calls: [] } : parseBatchExtraNetworks(prompts);
  const uses = hypernetworkUses(calls);
  let variant: UNetVariant | undefined;
  if (uses.length > 0) {
    if (!job.opts.networks?.hypernetworks) {
      throw new DarkroomError('HYPERNETWORK_NOT_FOUND', `the prompt uses hypernetwork "${uses[0]!.name}" but none were provided`, {
        name: uses[0]!.name,
      });
    }
    variant = await job.opts.networks.hypernetworks.resolve(uses);
  }
  const schedule = hiresSteps === undefined ? {} : { hiresSteps };
  const key = (kind: string, list: readonly string[]) => JSON.stringify([kind, list, steps, hiresSteps ?? null]);
  const ukey = key('uc', negativePrompts);
  let unconds = job.condCache.get(ukey) as ScheduledCond[][] | undefined;
  if (!unconds) {
    unconds = await learnedConditioning(negativePrompts, steps, job.text, schedule);
    job.condCache.set(ukey, unconds);
  }
  const ckey = key('c', texts);
  let conds = job.condCache.get(ckey) as MultiCond[] | undefined;
  if (!conds) {
    conds = await multicondLearnedConditioning(texts, steps, job.text, schedule);
    job.condCache.set(ckey, conds);
  }
  for (const [k, v] of job.opts.extraGenerationParams ?? []) job.extra.set(k, v);
  for (const [k, v] of job.text.generationParams) job.extra.set(k, v);
  return { conds, unconds, variant };
}

/** get_learned_conditioning([""]): the padding unit of pad_cond_uncond, computed once per job. */
export async function emptyPromptCond(job: JobState): Promise<Float32Tensor | undefined> {
  if (!job.params.settings.pad_cond_uncond) return undefined;
  if (!job.emptyCond) {
    const { onTextCall: _untraced, ...quiet } = job.text;
    const e = await encodeTexts([''], quiet);
    job.emptyCond = float32([e.shape[1]!, e.shape[2]!], e.data);
  }
  return job.emptyCond;
}

export function imageRng(job: JobState, shape: readonly [number, number, number], seeds: readonly number[], subseeds: readonly number[]): ImageRNG {
  const p = job.params;
  return new ImageRNG({
    shape,
    seeds,
    subseeds,
    subseedStrength: p.subseed_strength,
    seedResizeFromH: p.seed_resize_from_h,
    seedResizeFromW: p.seed_resize_from_w,
    source: job.noiseSource,
    ensd: p.settings.eta_noise_seed_delta,
    ...(p.seed_blend ? { seedBlend: p.seed_blend } : {}),
  });
}

export function progress(
  job: JobState,
  iteration: number,
  pass: 'first' | 'hires',
): (step: number, steps: number, denoised: Float32Tensor | undefined) => void {
  const base = job.stepsDone;
  return (step, _steps, denoised) => {
    job.opts.onStep?.({ step: base + step, steps: job.stepsTotal, iteration, pass, ...(denoised ? { denoised } : {}) });
  };
}

/** Decodes each latent of the batch separately (decode_latent_batch), VAE output before clamping. */
export async function decodeBatch(job: JobState, latents: Float32Tensor, iteration: number): Promise<Float32Tensor[]> {
  const [b, c, h, w] = latents.shape as [number, number, number, number];
  const per = c * h * w;
  const out: Float32Tensor[] = [];
  for (let i = 0; i < b; i++) {
    throwIfCancelled(job.opts.signal);
    const image = await job.model.vae.decode(float32([1, c, h, w], latents.data.slice(i * per, (i + 1) * per)));
    job.opts.trace?.onDecoded?.({ iteration, index: i, image });
    out.push(image);
  }
  return out;
}

/** create_infotext for image `index` of the job. */
export function infotextFor(job: JobState, index: number, extra: ReadonlyArray<readonly [string, InfotextValue]>): string {
  const p = job.params;
  const s = p.settings;
  const info = findSampler(job.samplerName);
  const eta = p.eta ?? s.eta_ancestral;
  const usesEnsd = s.eta_noise_seed_delta !== 0 && info.usesEnsd && eta !== 0;
  return createInfotext({
    prompt: job.allPrompts[index]!,
    negativePrompt: job.allNegativePrompts[index]!,
    steps: p.steps,
    sampler: job.samplerName,
    scheduleType: job.scheduler,
    cfgScale: pyFloat(p.cfg_scale),
    seed: job.seeds.allSeeds[index]!,
    width: p.width,
    height: p.height,
    modelHash: s.add_model_hash_to_info ? job.model.sha256.slice(0, 10) : null,
    model: s.add_model_name_to_info ? job.model.name : null,
    vaeHash: s.add_vae_hash_to_info && job.model.vaeFile ? job.model.vaeFile.sha256.slice(0, 10) : null,
    vae: s.add_vae_name_to_info && job.model.vaeFile ? job.model.vaeFile.name : null,
    variationSeed: p.subseed_strength !== 0 ? job.seeds.allSubseeds[index]! : null,
    variationSeedStrength: p.subseed_strength !== 0 ? pyFloat(p.subseed_strength) : null,
    seedResizeFrom: p.seed_resize_from_w > 0 && p.seed_resize_from_h > 0 ? [p.seed_resize_from_w, p.seed_resize_from_h] : null,
    conditionalMaskWeight: job.usesInpaintingConditioning ? pyFloat(s.inpainting_mask_weight) : null,
    tiling: p.tiling,
    clipSkip: s.CLIP_stop_at_last_layers,
    ensd: usesEnsd ? s.eta_noise_seed_delta : null,
    rng: s.randn_source,
    extra,
    version: s.add_version_to_infotext ? (job.opts.version ?? DEFAULT_INFOTEXT_VERSION) : null,
  });
}

/**
 * Decoded images to PNGs with their infotexts. `finish` changes each 8-bit image before it is written (the
 * inpainting overlay); it gets the image's index within the batch.
 */
export function writeImages(
  job: JobState,
  decoded: readonly Float32Tensor[],
  firstIndex: number,
  extra: ReadonlyArray<readonly [string, InfotextValue]>,
  out: { images: Uint8Array[]; infotexts: string[] },
  finish?: (rgb: RasterImage, batchIndex: number) => RasterImage,
): void {
  decoded.forEach((image, i) => {
    const [, , h, w] = image.shape as [number, number, number, number];
    const raw = decodedToRgb8(image.data, h, w);
    const rgb = finish ? finish(raw, (firstIndex + i) % job.params.batch_size) : raw;
    const infotext = infotextFor(job, firstIndex + i, extra);
    out.images.push(encodePng(rgb, [['parameters', infotext]]));
    out.infotexts.push(infotext);
  });
}

export function requestRecord(job: JobState, params: { override_settings?: OverrideSettings; [field: string]: unknown }): Record<string, unknown> {
  const ignored = unknownSettings(params.override_settings);
  return {
    ...params,
    seed: job.seeds.seed,
    subseed: job.seeds.subseed,
    sampler_name: job.samplerName,
    scheduler: job.scheduler,
    ...(ignored.length ? { ignored_settings: ignored } : {}),
  };
}

/** The model a job runs on: with `tiling`, its circular-padding form. */
export function modelForJob(model: PipelineModel, tiling: boolean): PipelineModel {
  if (!tiling) return model;
  if (!model.withCircularPadding) throw new DarkroomError('TILING_UNSUPPORTED', 'this model cannot render with tiling (circular padding)', { field: 'tiling' });
  return model.withCircularPadding();
}

export function splitLatents(latents: Float32Tensor): Float32Tensor[] {
  const [b, ...rest] = latents.shape as [number, ...number[]];
  const per = latents.data.length / b;
  return Array.from({ length: b }, (_, i) => float32([1, ...rest], latents.data.slice(i * per, (i + 1) * per)));
}
