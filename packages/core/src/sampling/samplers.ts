/**
 * A1111's samplers with their implementations: each entry of the catalog's sampler table (names, aliases,
 * options, name resolution: catalog/samplers.ts) with the function that runs it.
 */
import {
  sampleDpm2,
  sampleDpm2Ancestral,
  sampleDpmAdaptive,
  sampleDpmFast,
  sampleDpmpp2m,
  sampleDpmpp2mSde,
  sampleDpmpp2sAncestral,
  sampleDpmpp3mSde,
  sampleDpmppSde,
  sampleEuler,
  sampleEulerAncestral,
  sampleHeun,
  sampleLms,
  sampleRestart,
} from './kdiffusion/index.js';
import { compVisSamplers } from './compvis/index.js';
import { resolveSamplerEntry, SAMPLER_CATALOG, samplerEntryByAlias, type ResolvedSamplerEntry, type SamplerEntry } from '../catalog/samplers.js';
import type { Float32Tensor } from '../tensor.js';
import type { Denoiser, EpsModel, Sampler, SamplerContext, StepCallback } from './types.js';

export { effectiveScheduler, type SamplerFamily } from '../catalog/samplers.js';

export interface SamplerInfo extends SamplerEntry {
  /**
   * The implementation. k-diffusion samplers take x = noise * sigmas[0] and call ctx.denoise; timestep
   * samplers (compvis/) take the unscaled noise and call ctx.eps with options.steps; LCM calls ctx.denoise,
   * which must be the LCM denoiser.
   */
  readonly sampler: Sampler;
}

/** The k-diffusion functions by display name; the timestep samplers and LCM are compvis/'s. */
const KDIFFUSION: Readonly<Partial<Record<string, Sampler>>> = {
  'DPM++ 2M': sampleDpmpp2m,
  'DPM++ SDE': sampleDpmppSde,
  'DPM++ 2M SDE': sampleDpmpp2mSde,
  'DPM++ 2M SDE Heun': sampleDpmpp2mSde,
  'DPM++ 2S a': sampleDpmpp2sAncestral,
  'DPM++ 3M SDE': sampleDpmpp3mSde,
  'Euler a': sampleEulerAncestral,
  Euler: sampleEuler,
  LMS: sampleLms,
  Heun: sampleHeun,
  DPM2: sampleDpm2,
  'DPM2 a': sampleDpm2Ancestral,
  'DPM fast': sampleDpmFast,
  'DPM adaptive': sampleDpmAdaptive,
  Restart: sampleRestart,
};

function implementation(entry: SamplerEntry): Sampler {
  const s = entry.family === 'kdiffusion' ? KDIFFUSION[entry.name] : compVisSamplers[entry.name];
  if (!s) throw new Error(`no implementation for sampler ${entry.name}`);
  return s;
}

export const SAMPLERS: readonly SamplerInfo[] = SAMPLER_CATALOG.map((e) => ({ ...e, sampler: implementation(e) }));

export const DEFAULT_SAMPLER: SamplerInfo = SAMPLERS[0]!;

const BY_NAME = new Map(SAMPLERS.map((s) => [s.name, s]));

/** Exact display-name lookup (A1111's all_samplers_map). */
export function samplerByName(name: string): SamplerInfo | undefined {
  return BY_NAME.get(name);
}

/** Case-insensitive lookup by display name or alias (the catalog's samplerEntryByAlias), with the implementation. */
export function samplerByAlias(name: string): SamplerInfo | undefined {
  const entry = samplerEntryByAlias(name);
  return entry && BY_NAME.get(entry.name);
}

/** The catalog's resolution (scheduler label, fallback) with the resolved sampler's implementation. */
export type ResolvedSampler = Omit<ResolvedSamplerEntry, 'sampler'> & { readonly sampler: SamplerInfo };

/** The catalog's `get_sampler_and_scheduler` (resolveSamplerEntry), with the resolved sampler's implementation. */
export function resolveSamplerAndScheduler(
  samplerName: string | undefined | null,
  schedulerName?: string | null,
  convertAutomatic = true,
): ResolvedSampler {
  const r = resolveSamplerEntry(samplerName, schedulerName, convertAutomatic);
  return { sampler: BY_NAME.get(r.sampler.name)!, scheduler: r.scheduler, fallback: r.fallback };
}

/** The generation settings A1111 reads when it builds a k-diffusion sampler's keyword arguments. */
export interface SamplerSettings {
  /** p.eta, else opts.eta_ancestral (default 1). */
  readonly eta?: number;
  readonly sChurn?: number;
  readonly sTmin?: number;
  /** 0 = infinity. */
  readonly sTmax?: number;
  readonly sNoise?: number;
  /** txt2img only: the model's sigma table ends and steps, for DPM fast / adaptive (omit for img2img). */
  readonly modelSigmaMin?: number;
  readonly modelSigmaMax?: number;
  readonly steps?: number;
}

/**
 * The options (keyword arguments) A1111's KDiffusionSampler passes to the function, as a
 * SamplerContext.options record. s_tmax 0 is passed as Infinity, as A1111 does (`s_tmax or inf`).
 */
export function samplerOptions(info: SamplerInfo, settings: SamplerSettings = {}): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  const values: Record<string, number> = {
    s_churn: settings.sChurn ?? 0,
    s_tmin: settings.sTmin ?? 0,
    s_tmax: settings.sTmax || Infinity,
    s_noise: settings.sNoise ?? 1,
  };
  for (const p of info.extraParams) out[p] = values[p]!;
  if (info.takesEta) out.eta = settings.eta ?? 1;
  // txt2img passes the model's sigma range and n = steps; img2img passes none of them and the samplers
  // take sigmas[-2], sigmas[0] and len - 1 of the (truncated) schedule, as A1111's sample_img2img does.
  if (info.usesModelSigmaRange && settings.modelSigmaMin !== undefined && settings.modelSigmaMax !== undefined) {
    out.sigma_min = settings.modelSigmaMin;
    out.sigma_max = settings.modelSigmaMax;
    if (info.upstream === 'sample_dpm_fast' && settings.steps !== undefined) out.n = settings.steps;
  }
  Object.assign(out, info.fixedOptions);
  return out;
}

/** What a pipeline has in hand when it starts sampling one batch. */
export interface SamplerRun {
  readonly info: SamplerInfo;
  /** The schedule (schedules/samplerSigmas for k-diffusion and LCM); timestep samplers only read `steps`. */
  readonly sigmas: Float32Array;
  readonly steps: number;
  /** CFG'd denoiser: CompVisDenoiser (or the LCM denoiser for LCM) around the UNet. */
  readonly denoise: Denoiser;
  /** CFG'd eps model, for DDIM / DDIM CFG++ / PLMS / UniPC. */
  readonly eps?: EpsModel;
  /** The batch's ImageRNG after its first draw (the initial noise): each `next()` is one step draw. */
  readonly rng: { next(): Float32Tensor; skip?(): void };
  /** p.all_seeds of this batch: they seed the Brownian trees (ENSD does not apply there). */
  readonly seeds: readonly number[];
  /** rng.randn_local for the run's noise source. */
  readonly randnLocal: (seed: number, shape: readonly number[]) => Float32Tensor;
  readonly settings?: SamplerSettings & {
    /** opts.eta_ddim (DDIM, DDIM CFG++), default 0. */
    readonly etaDdim?: number;
    /** opts.uni_pc_variant / uni_pc_order / uni_pc_lower_order_final. */
    readonly uniPcVariant?: 'bh1' | 'bh2';
    readonly uniPcOrder?: number;
    readonly uniPcLowerOrderFinal?: boolean;
  };
  readonly onStep?: StepCallback;
  readonly signal?: AbortSignal;
}

/** The SamplerContext A1111's sampler classes would set up for this run (options, noise routing). */
export function samplerContext(run: SamplerRun): SamplerContext {
  const s = run.settings ?? {};
  let options: Record<string, number | string | boolean>;
  if (run.info.family === 'timestep') {
    options = { steps: run.steps, eta: s.etaDdim ?? 0 };
    if (s.uniPcVariant) options.variant = s.uniPcVariant;
    if (s.uniPcOrder !== undefined) options.order = s.uniPcOrder;
    if (s.uniPcLowerOrderFinal !== undefined) options.lowerOrderFinal = s.uniPcLowerOrderFinal;
  } else {
    options = samplerOptions(run.info, { ...s, steps: s.steps ?? run.steps });
  }
  return {
    denoise: run.denoise,
    ...(run.eps ? { eps: run.eps } : {}),
    sigmas: run.sigmas,
    noise: () => run.rng.next(),
    // a draw the step never uses only advances the generators (Euler, Heun, DPM2 with s_churn 0)
    ...(run.rng.skip ? { skipNoise: () => run.rng.skip!() } : {}),
    seeds: run.seeds,
    randnLocal: run.randnLocal,
    options,
    ...(run.onStep ? { onStep: run.onStep } : {}),
    ...(run.signal ? { signal: run.signal } : {}),
  };
}

/**
 * The latent a txt2img run starts from: noise * sigmas[0] for k-diffusion and LCM (KDiffusionSampler.sample;
 * noise * sqrt(1 + sigmas[0]^2) with A1111's sgm_noise_multiplier option), the noise itself for the timestep
 * samplers.
 */
export function startLatent(
  info: SamplerInfo,
  noise: Float32Tensor,
  sigmas: Float32Array,
  opts: { sgmNoiseMultiplier?: boolean } = {},
): Float32Tensor {
  if (info.family === 'timestep') return noise;
  const s0 = opts.sgmNoiseMultiplier ? Math.fround(Math.sqrt(Math.fround(1 + Math.fround(sigmas[0]! * sigmas[0]!)))) : sigmas[0]!;
  const data = new Float32Array(noise.data.length);
  for (let i = 0; i < data.length; i++) data[i] = noise.data[i]! * s0;
  return { dtype: 'float32', shape: [...noise.shape], data };
}
