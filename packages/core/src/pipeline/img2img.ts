/**
 * img2img as A1111's StableDiffusionProcessingImg2Img runs it: init images flattened onto white, resized by
 * resize_mode (0 just resize, 1 crop and resize, 2 resize and fill, 3 latent upscale), encoded by the VAE, then
 * per iteration the sampler starts partway down the schedule from init latent + noise. With a mask (inpainting,
 * see inpaint.ts) the init images are filled and cropped first, the latent is blended with the init latent at
 * every denoiser call and after sampling, and the original pixels outside the mask are composited back.
 */
import { DarkroomError, throwIfCancelled } from '../errors.js';
import { decodePng, type RasterImage } from '../formats/png.js';
import { randn, type NoiseSource } from '../sampling/rng/image-rng.js';
import { float32, type Float32Tensor } from '../tensor.js';
import type { InfotextValue } from '../formats/infotext.js';
import { pyFloat } from '../formats/infotext.js';
import { interpolateLatent, rgbToVaeInput } from './image.js';
import {
  applyOverlay,
  blendLatent,
  concatConditioning,
  fillLatent,
  latentBlend,
  maskedConditioningImage,
  planMask,
  prepareInitImage,
  type LatentBlend,
  type Mask,
  type MaskPlan,
} from './inpaint.js';
import { resolveImg2Img, type Img2ImgParams, type InitImage, type ResolvedImg2Img } from './params.js';
import { sampleImg2Img } from './sample.js';
import {
  batchConditioning,
  decodeBatch,
  emptyPromptCond,
  imageRng,
  modelForJob,
  progress,
  requestRecord,
  scheduleSteps,
  splitLatents,
  startJob,
  stopAfterIteration,
  writeImages,
  type GenerateOptions,
  type GenerationResult,
} from './job.js';
import { img2imgSteps } from './sample.js';
import type { PipelineModel } from './types.js';

const f = Math.fround;

/**
 * VAE-encodes one image (1,3,H,W in [-1,1]) to a latent sample: mean + std * noise. A1111 draws that noise from
 * torch's global generator, whose state no request controls; Darkroom draws it from the image's seed so the
 * same request always gives the same image.
 */
export async function encodeToLatent(model: PipelineModel, image: Float32Tensor, seed: number, source: NoiseSource): Promise<Float32Tensor> {
  const { mean, std } = await model.vae.encode(image);
  const noise = randn(source, seed, mean.shape);
  const scale = model.scaleFactor;
  return float32(mean.shape, Float32Array.from(mean.data, (m, i) => f(scale * f(m + f(std.data[i]! * noise.data[i]!)))));
}

function toRaster(img: InitImage, index: number, field = 'init_images'): RasterImage {
  if (img instanceof Uint8Array) {
    try {
      return decodePng(img);
    } catch (e) {
      const what = field === 'init_images' ? `init image ${index}` : field;
      throw new DarkroomError('INIT_IMAGE_INVALID', `${what} is not a readable PNG: ${(e as Error).message}`, { index, field });
    }
  }
  return img;
}

const NO_MASK: MaskPlan = { imageMask: undefined, maskForOverlay: undefined, cropRegion: undefined, pasteTo: undefined, latentMask: undefined, extra: [] };

function planFor(p: ResolvedImg2Img): MaskPlan {
  const m = p.inpaint;
  if (!m) return NO_MASK;
  return planMask(
    {
      mask: toRaster(m.mask, 0, 'mask'),
      latentMask: m.latent_mask === undefined ? undefined : toRaster(m.latent_mask, 0, 'latent_mask'),
      maskBlurX: m.mask_blur_x,
      maskBlurY: m.mask_blur_y,
      maskRound: m.mask_round,
      inpaintingFill: m.inpainting_fill,
      inpaintFullRes: m.inpaint_full_res,
      inpaintFullResPadding: m.inpaint_full_res_padding,
      invert: m.inpainting_mask_invert,
    },
    p.width,
    p.height,
    p.resize_mode,
  );
}

/**
 * img2img_image_conditioning for inpainting checkpoints: per batch item the mask (all ones without one) and the
 * VAE latent of the image with the masked part taken out by `weight`, (B,5,h,w). The encode's sampling noise
 * comes from the item's seed, as the init latent's does.
 */
export async function inpaintingConditioning(
  model: PipelineModel,
  images: readonly Float32Tensor[],
  mask: Mask | undefined,
  round: boolean,
  weight: number,
  seeds: readonly number[],
  source: NoiseSource,
): Promise<Float32Tensor> {
  const parts: Float32Tensor[] = [];
  for (let i = 0; i < seeds.length; i++) {
    const src = images.length === 1 ? images[0]! : images[i]!;
    const [, , h, w] = src.shape as [number, number, number, number];
    const masked = maskedConditioningImage(src, mask, round, weight);
    const latent = await encodeToLatent(model, masked.image, seeds[i]!, source);
    parts.push(concatConditioning(masked.mask, h, w, latent));
  }
  return stackBatch(parts);
}

function stackBatch(parts: readonly Float32Tensor[]): Float32Tensor {
  return float32([parts.length, ...parts[0]!.shape.slice(1)], new Float32Array(parts.flatMap((x) => [...x.data])));
}

/** images.flatten: RGBA composited over white with PIL's integer alpha_composite; other modes to RGB. */
export function flattenOnWhite(img: RasterImage): RasterImage {
  if (img.channels !== 4 && img.channels !== 2) {
    if (img.channels === 3) return img;
    const n = img.width * img.height;
    const data = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) data.fill(img.data[i]!, i * 3, i * 3 + 3);
    return { width: img.width, height: img.height, channels: 3, data };
  }
  const n = img.width * img.height;
  const data = new Uint8Array(n * 3);
  const PRECISION = 7;
  for (let i = 0; i < n; i++) {
    const a = img.data[i * img.channels + img.channels - 1]!;
    const outa255 = a * 255 + 255 * (255 - a);
    const coef1 = Math.floor((a * 255 * 255 * (1 << PRECISION)) / outa255);
    const coef2 = 255 * (1 << PRECISION) - coef1;
    for (let c = 0; c < 3; c++) {
      const src = img.data[i * img.channels + (img.channels === 4 ? c : 0)]!;
      const tmp = src * coef1 + 255 * coef2 + (0x80 << PRECISION);
      // SHIFTFORDIV255(a) = ((a >> 8) + a) >> 8
      data[i * 3 + c] = (((tmp >> 8) + tmp) >> 8) >> PRECISION;
    }
  }
  return { width: img.width, height: img.height, channels: 3, data };
}

/** img2img on a loaded model. `init_images` are PNG bytes or decoded pixels. */
export async function img2img(model: PipelineModel, request: Img2ImgParams, opts: GenerateOptions = {}): Promise<GenerationResult> {
  let p = resolveImg2Img(request);
  const images = p.init_images.map((im, i) => toRaster(im, i)).map(flattenOnWhite);
  if (images.length > 1) {
    if (images.length > p.batch_size && p.batch_size !== 1) {
      throw new DarkroomError('BAD_PARAMS', `bad number of images passed: ${images.length}; expecting ${p.batch_size} or less`);
    }
    p = { ...p, batch_size: images.length };
  }
  const { tEnc } = img2imgSteps(p.steps, p.denoising_strength, p.settings.img2img_fix_steps);
  model = modelForJob(model, p.tiling);
  const job = startJob(model, p, opts, tEnc + 1);
  job.extra.set('Denoising strength', pyFloat(p.denoising_strength));
  const plan = planFor(p);
  for (const [k, v] of plan.extra) job.extra.set(k, v);
  const fill = p.inpaint?.inpainting_fill ?? 1;
  const overlayState = { maskForOverlay: plan.maskForOverlay };
  const prepared = images.map((im) =>
    prepareInitImage(im, plan, overlayState, { inpaintingFill: fill, width: p.width, height: p.height, resizeMode: p.resize_mode }),
  );
  if (plan.imageMask && fill === 0) job.extra.set('Masked content', 'fill');
  const resized = prepared.map((x) => x.image);
  const overlays = prepared.map((x) => x.overlay);
  const bs = p.batch_size;
  const steps = scheduleSteps(job.samplerName, p.steps);
  const result = { images: [] as Uint8Array[], infotexts: [] as string[], latents: [] as Float32Tensor[] };

  // A1111 encodes the init images once, in init(), and every batch iteration starts from that latent
  const parts: Float32Tensor[] = [];
  for (let i = 0; i < bs; i++) {
    const im = resized.length === 1 ? resized[0]! : resized[i]!;
    parts.push(await encodeToLatent(model, rgbToVaeInput(im), job.seeds.allSeeds[i]!, job.noiseSource));
  }
  let init = float32([bs, ...parts[0]!.shape.slice(1)], new Float32Array(parts.flatMap((x) => [...x.data])));
  if (p.resize_mode === 3) init = interpolateLatent(init, p.height / 8, p.width / 8, 'bilinear');
  const [, , lh, lw] = init.shape as [number, number, number, number];
  if (lh !== p.height / 8 || lw !== p.width / 8) {
    throw new DarkroomError('INIT_IMAGE_INVALID', `init images must all have the same size (${p.width}x${p.height} after resizing)`);
  }
  let blend: LatentBlend | undefined;
  if (plan.imageMask && plan.latentMask) {
    blend = latentBlend(plan.latentMask, lh, lw, init.shape[1]!, p.inpaint!.mask_round);
    if (fill === 2) {
      // create_random_tensors with the first batch's seeds, once for every iteration (as A1111 does it)
      const noise = stackBatch(job.seeds.allSeeds.slice(0, bs).map((s) => randn(job.noiseSource, s, [1, init.shape[1]!, lh, lw])));
      init = fillLatent(init, blend, noise);
      job.extra.set('Masked content', 'latent noise');
    } else if (fill === 3) {
      init = fillLatent(init, blend, undefined);
      job.extra.set('Masked content', 'latent nothing');
    }
  }
  let imageCond: Float32Tensor | undefined;
  if (model.inpainting) {
    job.usesInpaintingConditioning = true;
    imageCond = await inpaintingConditioning(
      model,
      resized.map((im) => rgbToVaeInput(im)),
      plan.imageMask,
      p.inpaint?.mask_round ?? true,
      p.settings.inpainting_mask_weight,
      job.seeds.allSeeds.slice(0, bs),
      job.noiseSource,
    );
  }
  const finish = (rgb: RasterImage, i: number): RasterImage => applyOverlay(rgb, plan.pasteTo, overlays.length === 1 ? overlays[0] : overlays[i]);

  for (let n = 0; n < p.n_iter; n++) {
    throwIfCancelled(opts.signal);
    const range = [n * bs, (n + 1) * bs] as const;
    const seeds = job.seeds.allSeeds.slice(...range);
    const subseeds = job.seeds.allSubseeds.slice(...range);
    const { conds, unconds, variant } = await batchConditioning(
      job,
      job.allPrompts.slice(...range),
      job.allNegativePrompts.slice(...range),
      steps,
      undefined,
    );
    opts.trace?.onConds?.({ pass: 'first', iteration: n, conds, unconds });
    const emptyCond = await emptyPromptCond(job);
    const rng = imageRng(job, [4, lh, lw], seeds, subseeds);
    let noise = rng.next();
    if (p.initial_noise_multiplier !== 1) {
      job.extra.set('Noise multiplier', pyFloat(p.initial_noise_multiplier));
      noise = float32(noise.shape, Float32Array.from(noise.data, (v) => f(v * p.initial_noise_multiplier)));
    }
    opts.trace?.onInitialNoise?.({ pass: 'first', iteration: n, noise });
    const sampled = await sampleImg2Img(
      {
        model,
        samplerName: job.samplerName,
        scheduler: job.scheduler,
        settings: p.settings,
        eta: p.eta,
        conds,
        unconds,
        cfgScale: p.cfg_scale,
        ...(emptyCond ? { emptyCond } : {}),
        ...(variant !== undefined ? { variant } : {}),
        ...(imageCond ? { imageCond } : {}),
        ...(blend ? { inpaint: { initLatent: init, blend } } : {}),
        rng,
        noiseSource: job.noiseSource,
        seeds,
        extra: job.extra,
        isHrPass: false,
        ...(opts.trace ? { trace: opts.trace } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.stop ? { stop: opts.stop } : {}),
        onStep: progress(job, n, 'first'),
        pass: 'first',
        iteration: n,
      },
      p.steps,
      p.denoising_strength,
      p.settings.img2img_fix_steps,
      init,
      noise,
    );
    const latents = blend ? blendLatent(sampled, init, blend) : sampled;
    job.stepsDone += tEnc + 1;
    throwIfCancelled(opts.signal);
    const decoded = await decodeBatch(job, latents, n);
    const extra: [string, InfotextValue][] = [...job.extra];
    writeImages(job, decoded, n * bs, extra, result, plan.maskForOverlay ? finish : undefined);
    result.latents.push(...splitLatents(latents));
    if (stopAfterIteration(opts.stop)) break;
  }

  const { init_images: _images, mask: _mask, latent_mask: _latentMask, ...rest } = request;
  return {
    images: result.images,
    infotexts: result.infotexts,
    seeds: [...job.seeds.allSeeds],
    subseeds: [...job.seeds.allSubseeds],
    parameters: requestRecord(job, { ...rest, init_images: null, mask: null, latent_mask: null, override_settings: request.override_settings ?? {} }),
    latents: result.latents,
  };
}
