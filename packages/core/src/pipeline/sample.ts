/**
 * One sampling pass as A1111's KDiffusionSampler runs it: the sigma schedule of the sampler and scheduler,
 * the start latent (noise * sigma0 for txt2img; init latent + noise * sigma of the start step for img2img),
 * the CFG denoiser around the model, and the sampler with the per-image noise generators.
 */
import { DarkroomError } from '../errors.js';
import { float32, type Float32Tensor } from '../tensor.js';
import { compVisDenoiser, compVisVDenoiser, lcmDenoiser, vToEpsModel } from '../sampling/denoisers.js';
import { compVisImg2ImgStart } from '../sampling/compvis/index.js';
import { randnLocal, type ImageRNG, type NoiseSource } from '../sampling/rng/image-rng.js';
import { prefetchNoise } from '../sampling/prefetch/noise-prefetch.js';
import { samplerByName, samplerOptions, type SamplerInfo } from '../sampling/samplers.js';
import type { GuidanceOptions } from '../sampling/types.js';
import { DiscreteSchedule } from '../sampling/schedules/discrete.js';
import { samplerSigmas } from '../sampling/schedules/sampler-schedules.js';
import { discreteSigmaModel } from '../sampling/schedules/schedulers.js';
import type { InfotextValue } from '../formats/infotext.js';
import { pyFloat } from '../formats/infotext.js';
import type { Settings } from './params.js';
import { createCfgDenoiser, type ConditionedDenoiser, type MultiCond, type ScheduledCond } from './cfg-denoiser.js';
import type { StopControl } from './job.js';
import type { PipelineTrace } from './trace.js';
import type { LatentBlend } from './inpaint.js';
import type { PipelineModel, UNetVariant } from './types.js';

const f = Math.fround;

/** A1111's extra_generation_params: insertion-ordered, a re-set key keeps its place. */
export type ExtraParams = Map<string, InfotextValue>;

export function findSampler(name: string): SamplerInfo {
  const info = samplerByName(name);
  if (!info) throw new DarkroomError('SAMPLER_UNKNOWN', `unknown sampler "${name}"`, { sampler: name });
  return info;
}

/**
 * The model around the UNet as the sampler family calls it, with the conditioning per call: k-diffusion's
 * CompVisDenoiser (CompVisVDenoiser for v-prediction) taking sigmas, LCM's denoiser, or for the timestep
 * samplers the eps model itself taking timesteps (A1111's CompVisTimestepsDenoiser / ...VDenoiser).
 */
export function conditionedDenoiser(
  model: PipelineModel,
  variant: UNetVariant | undefined,
  trace?: PipelineTrace,
  family: SamplerInfo['family'] = 'kdiffusion',
): ConditionedDenoiser {
  const schedule = new DiscreteSchedule(model.alphasCumprod);
  const unetWith = (context: Float32Tensor, imageCond: Float32Tensor | undefined) => async (xIn: Float32Tensor, t: Float32Array): Promise<Float32Tensor> => {
    // ldm's hybrid conditioning: c_concat joins the already c_in-scaled x along channels
    const x = imageCond ? concatChannels(xIn, imageCond) : xIn;
    const out = await model.unet.run(x, t, context, undefined, variant);
    trace?.onUnetCall?.({ x: xIn, t: Float32Array.from(t), context, out });
    return out;
  };
  const denoiser: ConditionedDenoiser = async (x, sigma, context, imageCond) => {
    const unet = unetWith(context, imageCond);
    let out: Float32Tensor;
    if (family === 'timestep') out = await (model.parameterization === 'v' ? vToEpsModel(unet, model.alphasCumprod) : unet)(x, sigma);
    else if (family === 'lcm') out = await lcmDenoiser(unet)(x, sigma);
    else out = await (model.parameterization === 'v' ? compVisVDenoiser : compVisDenoiser)(unet, schedule)(x, sigma);
    trace?.onDenoiserCall?.({ x: float32(x.shape, Float32Array.from(x.data)), sigma: Float32Array.from(sigma), out });
    return out;
  };
  // Untraced k-diffusion eps models expose the CompVisDenoiser's parts, so the CFG call fuses them (same bits).
  if (family !== 'kdiffusion' || model.parameterization === 'v' || trace) return denoiser;
  let lastSigma = NaN;
  let lastT = 0;
  return Object.assign(denoiser, {
    epsParts: {
      timestep: (sigma: number): number => {
        if (sigma !== lastSigma) {
          lastSigma = sigma;
          lastT = schedule.sigmaToT(sigma, false);
        }
        return lastT;
      },
      unet: (xScaled: Float32Tensor, t: Float32Array, context: Float32Tensor, imageCond?: Float32Tensor) => unetWith(context, imageCond)(xScaled, t),
    },
  });
}

/** (R,A,H,W) and (R,B,H,W) -> (R,A+B,H,W). */
function concatChannels(a: Float32Tensor, b: Float32Tensor): Float32Tensor {
  const [r, ca, h, w] = a.shape as [number, number, number, number];
  const cb = b.shape[1]!;
  if (b.shape[0] !== r || b.shape[2] !== h || b.shape[3] !== w) {
    throw new DarkroomError('IMAGE_COND_SHAPE', `image conditioning [${b.shape}] does not fit latents [${a.shape}]`);
  }
  const plane = h * w;
  const out = new Float32Array(r * (ca + cb) * plane);
  for (let i = 0; i < r; i++) {
    out.set(a.data.subarray(i * ca * plane, (i + 1) * ca * plane), i * (ca + cb) * plane);
    out.set(b.data.subarray(i * cb * plane, (i + 1) * cb * plane), (i * (ca + cb) + ca) * plane);
  }
  return float32([r, ca + cb, h, w], out);
}

export interface PassInput {
  readonly model: PipelineModel;
  readonly samplerName: string;
  /** Scheduler label or name ('Automatic', 'Karras', ...). */
  readonly scheduler: string;
  readonly settings: Settings;
  readonly eta: number | undefined;
  readonly conds: readonly MultiCond[];
  readonly unconds: ReadonlyArray<readonly ScheduledCond[]>;
  readonly cfgScale: number;
  readonly emptyCond?: Float32Tensor;
  readonly variant?: UNetVariant;
  /** Inpainting checkpoints' c_concat per batch item (B,5,h,w). */
  readonly imageCond?: Float32Tensor;
  /** Inpainting's latent blend inside the CFG denoiser, with the init latent it keeps. */
  readonly inpaint?: { readonly initLatent: Float32Tensor; readonly blend: LatentBlend };
  readonly rng: ImageRNG;
  readonly noiseSource: NoiseSource;
  readonly seeds: readonly number[];
  readonly extra: ExtraParams;
  readonly isHrPass: boolean;
  readonly trace?: PipelineTrace;
  readonly signal?: AbortSignal;
  /** A1111's interrupt / skip: ends the sampler early with its latest denoised estimate (see StopControl). */
  readonly stop?: StopControl;
  readonly onStep?: (step: number, steps: number, denoised: Float32Tensor | undefined) => void;
  readonly pass: 'first' | 'hires';
  readonly iteration: number;
}

/** Records a schedule's extra parameters the way get_sigmas does (first pass vs hires pass). */
function recordScheduleParams(extra: ExtraParams, params: Readonly<Record<string, string | number | boolean>>, isHrPass: boolean): void {
  for (const [k, v] of Object.entries(params)) {
    const value: InfotextValue = typeof v === 'number' && (k.includes('sigma') || k.includes('rho') || k.includes('Beta')) ? pyFloat(v) : v;
    if (k === 'Schedule type') {
      if (!isHrPass) extra.set('Schedule type', value);
      else if (value !== extra.get('Schedule type')) extra.set('Hires schedule type', value);
      continue;
    }
    extra.set(k, value);
  }
}

/**
 * Sampler keyword arguments and the infotext entries A1111 writes for non-default values. `pass` decides what
 * DPM fast / adaptive get: txt2img gives them the model's sigma range and n = steps (KDiffusionSampler.sample);
 * img2img gives nothing, so they take the truncated schedule's sigmas[-2], sigmas[0] and length - 1, which is
 * what sample_img2img passes.
 */
function samplerArgs(info: SamplerInfo, input: PassInput, steps: number, pass: 'txt2img' | 'img2img'): Record<string, number | string> {
  const s = input.settings;
  if (info.family === 'timestep') {
    // CompVisSampler: eta from the request or eta_ddim, written as "Eta DDIM" when not 0 by the samplers
    // whose function takes it (DDIM and DDIM CFG++; PLMS and UniPC have no eta)
    const etaDdim = input.eta ?? s.eta_ddim;
    if ((info.name === 'DDIM' || info.name === 'DDIM CFG++') && etaDdim !== 0) input.extra.set('Eta DDIM', pyFloat(etaDdim));
    return { steps, eta: etaDdim };
  }
  const eta = input.eta ?? s.eta_ancestral;
  if (info.takesEta && eta !== 1) input.extra.set('Eta', pyFloat(eta));
  const defaults: Record<string, [string, number, number]> = {
    s_churn: ['Sigma churn', s.s_churn, 0],
    s_tmin: ['Sigma tmin', s.s_tmin, 0],
    s_tmax: ['Sigma tmax', s.s_tmax, 0],
    s_noise: ['Sigma noise', s.s_noise, 1],
  };
  for (const p of info.extraParams) {
    const d = defaults[p];
    if (d && d[1] !== d[2]) input.extra.set(d[0], pyFloat(d[1]));
  }
  const settings = { eta, sChurn: s.s_churn, sTmin: s.s_tmin, sTmax: s.s_tmax, sNoise: s.s_noise };
  if (pass === 'img2img') return samplerOptions(info, settings);
  const schedule = new DiscreteSchedule(input.model.alphasCumprod);
  return samplerOptions(info, {
    ...settings,
    modelSigmaMin: schedule.sigmas[0]!,
    modelSigmaMax: schedule.sigmas[schedule.sigmas.length - 1]!,
    steps,
  });
}

function sigmasFor(info: SamplerInfo, input: PassInput, steps: number): Float32Array {
  // timestep samplers walk A1111's timesteps for `steps` themselves
  if (info.family === 'timestep') return new Float32Array(0);
  const s = input.settings;
  const model = info.family === 'lcm' ? undefined : discreteSigmaModel(new DiscreteSchedule(input.model.alphasCumprod));
  const r = samplerSigmas(
    info.name,
    input.scheduler,
    steps,
    { alwaysDiscardNextToLastSigma: s.always_discard_next_to_last_sigma, sigmaMin: s.sigma_min, sigmaMax: s.sigma_max, rho: s.rho },
    model,
  );
  recordScheduleParams(input.extra, r.extraGenerationParams, input.isHrPass);
  return r.sigmas;
}

async function runSampler(info: SamplerInfo, input: PassInput, start: Float32Tensor, sigmas: Float32Array, options: Record<string, number | string>): Promise<Float32Tensor> {
  const cfg = createCfgDenoiser(conditionedDenoiser(input.model, input.variant, input.trace, info.family), {
    conds: input.conds,
    unconds: input.unconds,
    cfgScale: input.cfgScale,
    padCondUncond: input.settings.pad_cond_uncond,
    batchCondUncond: input.settings.batch_cond_uncond,
    ...(input.emptyCond ? { emptyCond: input.emptyCond } : {}),
    ...(input.imageCond ? { imageCond: input.imageCond } : {}),
    ...(input.inpaint ? { inpaint: { ...input.inpaint, beforeDenoising: info.family === 'timestep' } } : {}),
    ...(input.trace ? { trace: input.trace } : {}),
  });
  input.trace?.onSigmas?.({ pass: input.pass, iteration: input.iteration, sigmas: Float32Array.from(sigmas) });
  const source = input.noiseSource;
  // An interrupt or skip stops the sampler through its own abort check, as a cancel does, but the job goes on
  // with the latest denoised estimate (A1111's last_latent: the start latent before any step).
  const halt = input.stop ? new AbortController() : undefined;
  const signal = halt ? (input.signal ? AbortSignal.any([input.signal, halt.signal]) : halt.signal) : input.signal;
  let latest: Float32Tensor | undefined;
  const sampleRandnLocal = (seed: number, shape: readonly number[]): Float32Tensor => randnLocal(source, seed, shape);
  // the run's draws and Brownian increments computed on noise threads while the model runs (same bits)
  const prefetched = await prefetchNoise({
    sampler: info.sampler,
    sigmas,
    options,
    seeds: input.seeds,
    rng: input.rng,
    source,
    randnLocal: sampleRandnLocal,
  });
  const run = info.sampler(start, {
    denoise: cfg.denoise,
    ...(info.family === 'timestep'
      ? {
          eps: cfg.denoise,
          guidedEps: async (x: Float32Tensor, t: Float32Array, guidance?: GuidanceOptions) => {
            const r = await cfg.guided(x, t, guidance);
            return { eps: r.denoised, uncondEps: r.uncond };
          },
        }
      : {}),
    sigmas,
    noise: prefetched?.noise ?? (() => input.rng.next()),
    // a draw the step never uses only advances the generators (Euler, Heun, DPM2 with s_churn 0)
    skipNoise: prefetched?.skipNoise ?? (() => input.rng.skip()),
    ...(prefetched?.brownian ? { brownian: prefetched.brownian } : {}),
    seeds: input.seeds,
    randnLocal: sampleRandnLocal,
    ...(signal ? { signal } : {}),
    onStep: (s) => {
      if (halt && s.denoised) latest = float32(s.denoised.shape, Float32Array.from(s.denoised.data));
      input.onStep?.(s.step + 1, s.steps, s.denoised);
      if (halt && !halt.signal.aborted && input.stop!.requested() !== null) halt.abort(new Error('stopped early'));
    },
    options,
  });
  let out: Float32Tensor;
  try {
    out = await run;
  } catch (e) {
    if (!halt?.signal.aborted || input.signal?.aborted) throw e;
    out = latest ?? start;
  } finally {
    prefetched?.finish();
  }
  if (cfg.paddedCondUncond) input.extra.set('Pad conds', true);
  input.trace?.onLatent?.({ pass: input.pass, iteration: input.iteration, latent: float32(out.shape, Float32Array.from(out.data)) });
  return out;
}

/** KDiffusionSampler.sample: x = noise * sigmas[0], then the sampler over the full schedule. */
export async function sampleTxt2Img(input: PassInput, steps: number, noise: Float32Tensor): Promise<Float32Tensor> {
  const info = findSampler(input.samplerName);
  const sigmas = sigmasFor(info, input, steps);
  const options = samplerArgs(info, input, steps, 'txt2img');
  if (info.family === 'timestep') return runSampler(info, input, noise, sigmas, options);
  const s0 = sigmas[0]!;
  // a plain loop: Float32Array.from with a callback costs about 1 ms per 16384 values
  const data = new Float32Array(noise.data.length);
  for (let i = 0; i < data.length; i++) data[i] = noise.data[i]! * s0;
  return runSampler(info, input, float32(noise.shape, data), sigmas, options);
}

/**
 * sd_samplers_common.setup_img2img_steps: with explicit steps (the hires pass) or img2img_fix_steps the
 * schedule is stretched so that exactly `steps` are run; otherwise int(strength * steps) + 1 of `steps` are.
 */
export function img2imgSteps(steps: number, denoisingStrength: number, explicitSteps: boolean): { steps: number; tEnc: number } {
  if (explicitSteps) {
    return { steps: denoisingStrength > 0 ? Math.trunc(steps / Math.min(denoisingStrength, 0.999)) : 0, tEnc: steps - 1 };
  }
  return { steps, tEnc: Math.trunc(Math.min(denoisingStrength, 0.999) * steps) };
}

/** KDiffusionSampler.sample_img2img: start at the schedule entry the strength selects, from init + noise * sigma. */
export async function sampleImg2Img(
  input: PassInput,
  requestedSteps: number,
  denoisingStrength: number,
  explicitSteps: boolean,
  initLatent: Float32Tensor,
  noise: Float32Tensor,
): Promise<Float32Tensor> {
  const info = findSampler(input.samplerName);
  const { steps, tEnc } = img2imgSteps(requestedSteps, denoisingStrength, explicitSteps);
  if (steps <= 0) throw new DarkroomError('BAD_PARAMS', 'denoising_strength must be above 0 for img2img', { denoisingStrength });
  if (info.family === 'timestep') {
    const options = { ...samplerArgs(info, input, steps, 'img2img'), tEnc };
    const start = compVisImg2ImgStart(initLatent, noise, steps, tEnc, input.model.alphasCumprod);
    return runSampler(info, input, start, new Float32Array(0), options);
  }
  const sigmas = sigmasFor(info, input, steps);
  const sched = sigmas.slice(steps - tEnc - 1);
  const options = samplerArgs(info, input, tEnc + 1, 'img2img');
  const s0 = sched[0]!;
  const data = new Float32Array(initLatent.data.length);
  for (let i = 0; i < data.length; i++) data[i] = initLatent.data[i]! + f(noise.data[i]! * s0);
  const x = float32(initLatent.shape, data);
  return runSampler(info, input, x, sched, options);
}
