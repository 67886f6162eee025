/**
 * txt2img as A1111's StableDiffusionProcessingTxt2Img runs it, with hires fix: per batch iteration the
 * conditioning, the initial noise of the per-image generators, the sampler, optionally the second pass
 * (latent or image upscale, new generators at the new size, its own steps and strength), then decode,
 * 8-bit conversion, infotext and PNG.
 */
import { DarkroomError, throwIfCancelled } from '../errors.js';
import { pyFloat, type InfotextValue } from '../formats/infotext.js';
import type { Float32Tensor } from '../tensor.js';
import { float32 } from '../tensor.js';
import { resolveTxt2Img, type ResolvedTxt2Img, type Txt2ImgParams } from './params.js';
import { sampleImg2Img, sampleTxt2Img } from './sample.js';
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
  type JobState,
} from './job.js';
import { resizeWithUpscaler, type ModelUpscaler } from './upscalers.js';
import { decodedToRgb8, interpolateLatent, resizeImage, resizeNearest, rgbToVaeInput } from './image.js';
import { IMAGE_UPSCALERS, LATENT_UPSCALE_MODES, type LatentInterpolation } from '../catalog/upscalers.js';
import { encodeToLatent, inpaintingConditioning } from './img2img.js';
import { hiresSize } from './hires-size.js';
import type { PipelineModel } from './types.js';
import { resolveSamplerAndScheduler } from '../sampling/samplers.js';

interface HiresPlan {
  readonly width: number;
  readonly height: number;
  readonly truncateX: number;
  readonly truncateY: number;
  readonly steps: number;
  readonly samplerName: string;
  readonly scheduler: string;
  readonly latentMode: LatentInterpolation | undefined;
  readonly upscaler: string;
  /** The upscaler model `upscaler` names, when it is not a built-in. */
  readonly model?: Promise<ModelUpscaler>;
}

/** StableDiffusionProcessingTxt2Img.init / calculate_target_resolution for hires fix. */
function planHires(p: ResolvedTxt2Img, job: JobState): HiresPlan {
  const extra = job.extra;
  extra.set('Denoising strength', pyFloat(p.denoising_strength));
  const hrSampler = p.hr_sampler_name && p.hr_sampler_name !== 'Use same sampler' ? p.hr_sampler_name : undefined;
  if (hrSampler && hrSampler !== job.samplerName) extra.set('Hires sampler', hrSampler);
  extra.set('Hires prompt', null);
  extra.set('Hires negative prompt', null);
  extra.set('Hires schedule type', null);
  const upscaler = p.hr_upscaler ?? p.settings.latent_upscale_default_mode;
  const latentMode = LATENT_UPSCALE_MODES[upscaler];
  // A built-in name wins over a model file of the same stem, as A1111 lists the built-ins first.
  const model = latentMode || IMAGE_UPSCALERS.has(upscaler) ? undefined : job.opts.networks?.upscalers?.(upscaler);
  if (!latentMode && !IMAGE_UPSCALERS.has(upscaler) && !model) {
    throw new DarkroomError('UPSCALER_NOT_FOUND', `could not find upscaler named ${upscaler}`, {
      upscaler,
      available: [...Object.keys(LATENT_UPSCALE_MODES), ...IMAGE_UPSCALERS],
    });
  }
  if (p.hr_resize_x === 0 && p.hr_resize_y === 0) extra.set('Hires upscale', pyFloat(p.hr_scale));
  else extra.set('Hires resize', `${p.hr_resize_x}x${p.hr_resize_y}`);
  const { width, height, truncateX, truncateY } = hiresSize(p);
  if (p.hr_second_pass_steps) extra.set('Hires steps', p.hr_second_pass_steps);
  if (p.hr_upscaler !== undefined) extra.set('Hires upscaler', p.hr_upscaler);
  const samplerName = resolveSamplerAndScheduler(hrSampler ?? job.samplerName, p.hr_scheduler ?? job.scheduler, false);
  return {
    width,
    height,
    truncateX,
    truncateY,
    steps: p.hr_second_pass_steps || p.steps,
    samplerName: samplerName.sampler.name,
    scheduler: p.hr_scheduler ?? job.scheduler,
    latentMode,
    upscaler,
    ...(model ? { model } : {}),
  };
}

/** The first pass's latents to the second pass's start latents (sample_hr_pass, before sampling). */
async function upscaleForHires(
  job: JobState,
  plan: HiresPlan,
  latents: Float32Tensor,
  seeds: readonly number[],
  iteration: number,
): Promise<Float32Tensor> {
  const lh = Math.floor(plan.height / 8);
  const lw = Math.floor(plan.width / 8);
  let out: Float32Tensor;
  if (plan.latentMode) {
    out = interpolateLatent(latents, lh, lw, plan.latentMode);
  } else {
    const decoded = await decodeBatch(job, latents, iteration);
    const parts: Float32Tensor[] = [];
    for (let i = 0; i < decoded.length; i++) {
      const img = decoded[i]!;
      const [, , h, w] = img.shape as [number, number, number, number];
      const rgb = decodedToRgb8(img.data, h, w);
      const up = plan.model
        ? await resizeWithUpscaler(await plan.model, rgb, plan.width, plan.height)
        : plan.upscaler === 'Nearest'
          ? resizeNearest(rgb, plan.width, plan.height)
          : resizeImage(rgb, plan.width, plan.height);
      parts.push(await encodeToLatent(job.model, rgbToVaeInput(up), seeds[i]!, job.noiseSource));
    }
    out = stack(parts);
  }
  if (plan.truncateX || plan.truncateY) out = cropLatent(out, plan.truncateX, plan.truncateY);
  return out;
}

function stack(parts: readonly Float32Tensor[]): Float32Tensor {
  const per = parts[0]!.data.length;
  const data = new Float32Array(per * parts.length);
  parts.forEach((p, i) => data.set(p.data, i * per));
  return float32([parts.length, ...parts[0]!.shape.slice(1)], data);
}

/** samples[:, :, ty//2 : H-(ty+1)//2, tx//2 : W-(tx+1)//2] */
function cropLatent(x: Float32Tensor, tx: number, ty: number): Float32Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const y0 = Math.floor(ty / 2);
  const y1 = h - Math.floor((ty + 1) / 2);
  const x0 = Math.floor(tx / 2);
  const x1 = w - Math.floor((tx + 1) / 2);
  const oh = y1 - y0;
  const ow = x1 - x0;
  const out = new Float32Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < oh; y++) {
      out.set(x.data.subarray(p * h * w + (y + y0) * w + x0, p * h * w + (y + y0) * w + x1), p * oh * ow + y * ow);
    }
  }
  return float32([n, c, oh, ow], out);
}

/**
 * txt2img_image_conditioning of inpainting checkpoints: the whole image masked, i.e. a mask of ones and the latent
 * of a mid-gray image (0 in the VAE's range). The hires pass gets the same at its size, which is what A1111's
 * img2img_image_conditioning gives there at the default inpainting_mask_weight of 1.
 */
async function txt2imgImageConditioning(job: JobState, width: number, height: number, seeds: readonly number[]): Promise<Float32Tensor> {
  const gray = float32([1, 3, height, width]);
  return inpaintingConditioning(job.model, [gray], undefined, true, 1, seeds, job.noiseSource);
}

/** txt2img on a loaded model. Params use A1111's field names; see params.ts for defaults. */
export async function txt2img(model: PipelineModel, request: Txt2ImgParams, opts: GenerateOptions = {}): Promise<GenerationResult> {
  const p = resolveTxt2Img(request);
  model = modelForJob(model, p.tiling);
  const hiresStepsPerIteration = p.enable_hr ? p.hr_second_pass_steps || p.steps : 0;
  const job = startJob(model, p, opts, p.steps + hiresStepsPerIteration);
  job.usesInpaintingConditioning = model.inpainting === true;
  const plan = p.enable_hr ? planHires(p, job) : undefined;
  // all_hr_prompts: the hires prompt, else the image's prompt (each image's own in a batch of requests)
  const per = opts.perImage;
  const allHrPrompts = per
    ? per.map((r) => r.hr_prompt || r.prompt)
    : new Array<string>(job.allPrompts.length).fill(p.hr_prompt || p.prompt);
  const allHrNegative = per
    ? per.map((r) => r.hr_negative_prompt || r.negative_prompt)
    : new Array<string>(job.allPrompts.length).fill(p.hr_negative_prompt || p.negative_prompt);
  const firstpassSteps = scheduleSteps(job.samplerName, p.steps);
  const result = { images: [] as Uint8Array[], infotexts: [] as string[], latents: [] as Float32Tensor[] };
  const bs = p.batch_size;

  for (let n = 0; n < p.n_iter; n++) {
    throwIfCancelled(opts.signal);
    const range = [n * bs, (n + 1) * bs] as const;
    const seeds = job.seeds.allSeeds.slice(...range);
    const subseeds = job.seeds.allSubseeds.slice(...range);
    const { conds, unconds, variant } = await batchConditioning(
      job,
      job.allPrompts.slice(...range),
      job.allNegativePrompts.slice(...range),
      firstpassSteps,
      undefined,
    );
    opts.trace?.onConds?.({ pass: 'first', iteration: n, conds, unconds });
    const emptyCond = await emptyPromptCond(job);
    const rng = imageRng(job, [4, p.height / 8, p.width / 8], seeds, subseeds);
    const noise = rng.next();
    opts.trace?.onInitialNoise?.({ pass: 'first', iteration: n, noise: float32(noise.shape, Float32Array.from(noise.data)) });
    const base = {
      model,
      settings: p.settings,
      eta: p.eta,
      cfgScale: p.cfg_scale,
      noiseSource: job.noiseSource,
      seeds,
      extra: job.extra,
      ...(emptyCond ? { emptyCond } : {}),
      ...(opts.trace ? { trace: opts.trace } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.stop ? { stop: opts.stop } : {}),
      iteration: n,
    };
    const imageCond = model.inpainting ? await txt2imgImageConditioning(job, p.width, p.height, seeds) : undefined;
    let latents = await sampleTxt2Img(
      {
        ...base,
        ...(imageCond ? { imageCond } : {}),
        samplerName: job.samplerName,
        scheduler: job.scheduler,
        conds,
        unconds,
        ...(variant !== undefined ? { variant } : {}),
        rng,
        isHrPass: false,
        onStep: progress(job, n, 'first'),
        pass: 'first',
      },
      p.steps,
      noise,
    );
    job.stepsDone += p.steps;

    // An interrupted or skipped first pass is kept as it is: no hires pass (A1111's sample_hr_pass returns early).
    if (plan && !opts.stop?.requested()) {
      throwIfCancelled(opts.signal);
      const start = await upscaleForHires(job, plan, latents, seeds, n);
      const [, , lh, lw] = start.shape as [number, number, number, number];
      const hrRng = imageRng(job, [4, lh, lw], seeds, subseeds);
      const hrNoise = hrRng.next();
      opts.trace?.onInitialNoise?.({ pass: 'hires', iteration: n, noise: float32(hrNoise.shape, Float32Array.from(hrNoise.data)) });
      const hr = await batchConditioning(
        job,
        allHrPrompts.slice(...range),
        allHrNegative.slice(...range),
        firstpassSteps,
        scheduleSteps(plan.samplerName, plan.steps),
      );
      opts.trace?.onConds?.({ pass: 'hires', iteration: n, conds: hr.conds, unconds: hr.unconds });
      const hrImageCond = model.inpainting ? await txt2imgImageConditioning(job, lw * 8, lh * 8, seeds) : undefined;
      latents = await sampleImg2Img(
        {
          ...base,
          ...(hrImageCond ? { imageCond: hrImageCond } : {}),
          samplerName: plan.samplerName,
          scheduler: plan.scheduler,
          conds: hr.conds,
          unconds: hr.unconds,
          ...(hr.variant !== undefined ? { variant: hr.variant } : {}),
          rng: hrRng,
          isHrPass: true,
          onStep: progress(job, n, 'hires'),
          pass: 'hires',
        },
        plan.steps,
        p.denoising_strength,
        true,
        start,
        hrNoise,
      );
      job.stepsDone += plan.steps;
    }

    throwIfCancelled(opts.signal);
    const decoded = await decodeBatch(job, latents, n);
    const extra: [string, InfotextValue][] = [...job.extra].map(([k, v]) => [k, v]);
    // Hires prompt / negative prompt keep their place and are written only where they differ from the main ones
    const withHrPrompts = (index: number): [string, InfotextValue][] =>
      extra.map(([k, v]): [string, InfotextValue] => {
        if (k === 'Hires prompt') return [k, allHrPrompts[index] !== job.allPrompts[index] ? allHrPrompts[index]! : null];
        if (k === 'Hires negative prompt') return [k, allHrNegative[index] !== job.allNegativePrompts[index] ? allHrNegative[index]! : null];
        return [k, v];
      });
    for (let i = 0; i < decoded.length; i++) {
      writeImages(job, [decoded[i]!], n * bs + i, withHrPrompts(n * bs + i), result);
    }
    result.latents.push(...splitLatents(latents));
    if (stopAfterIteration(opts.stop)) break;
  }

  return {
    images: result.images,
    infotexts: result.infotexts,
    seeds: [...job.seeds.allSeeds],
    subseeds: [...job.seeds.allSubseeds],
    parameters: requestRecord(job, { ...request, override_settings: request.override_settings ?? {} }),
    latents: result.latents,
  };
}
