/**
 * A1111's sampler table: display names, aliases, the k-diffusion function each runs and the options A1111
 * attaches to it (default scheduler, second order, ENSD, Brownian noise, discard-penultimate), plus A1111's
 * name resolution (`get_sampler_and_scheduler`, legacy "DPM++ 2M Karras" style names included).
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
import { SCHEDULERS } from './schedules/schedulers.js';
import type { Float32Tensor } from '../tensor.js';
import type { Denoiser, EpsModel, Sampler, SamplerContext, StepCallback } from './types.js';

/** Which model interface a sampler drives. */
export type SamplerFamily =
  /** k-diffusion: calls the denoiser D(x, sigma) and starts from noise * sigmas[0]. */
  | 'kdiffusion'
  /** A1111's timestep samplers (DDIM, DDIM CFG++, PLMS, UniPC): call the eps model on the VP latent. */
  | 'timestep'
  /** LCM: k-diffusion-style loop over LCM's own denoiser (see compvis/). */
  | 'lcm';

export interface SamplerInfo {
  /** Display name, as A1111 lists it and writes it to the infotext. */
  readonly name: string;
  readonly aliases: readonly string[];
  readonly family: SamplerFamily;
  /** The upstream function (k-diffusion `sample_*`, or A1111's module function). */
  readonly upstream: string;
  /**
   * The implementation. k-diffusion samplers take x = noise * sigmas[0] and call ctx.denoise; timestep
   * samplers (compvis/) take the unscaled noise and call ctx.eps with options.steps; LCM calls ctx.denoise,
   * which must be the LCM denoiser.
   */
  readonly sampler: Sampler;
  /** Scheduler name "Automatic" resolves to; undefined = the model's discrete schedule (uniform). */
  readonly defaultScheduler?: string;
  readonly discardPenultimate: boolean;
  /** Two model calls per step: A1111 builds prompt-editing schedules over steps * 2. */
  readonly secondOrder: boolean;
  /** Only decides whether ENSD goes into the infotext; the reseed itself always happens. */
  readonly usesEnsd: boolean;
  /** Noise from per-image Brownian trees (seeded from the image seeds, ignoring ENSD). */
  readonly brownianNoise: boolean;
  /** The function takes `eta` (A1111 passes `eta_ancestral`, default 1; "Eta" in the infotext when != 1). */
  readonly takesEta: boolean;
  /** A1111's `sampler_extra_params`: option names copied from the settings. */
  readonly extraParams: readonly string[];
  /** Fixed keyword arguments A1111 adds (solver_type 'heun'). */
  readonly fixedOptions: Readonly<Record<string, string>>;
  /** DPM fast / adaptive: given the model's sigma range (and n = steps) instead of the schedule. */
  readonly usesModelSigmaRange: boolean;
}

const CHURN = ['s_churn', 's_tmin', 's_tmax', 's_noise'] as const;
const S_NOISE = ['s_noise'] as const;

interface Row {
  name: string;
  upstream: string;
  aliases: string[];
  sampler?: Sampler;
  family?: SamplerFamily;
  scheduler?: string;
  discard?: boolean;
  secondOrder?: boolean;
  usesEnsd?: boolean;
  brownian?: boolean;
  eta?: boolean;
  extra?: readonly string[];
  fixed?: Record<string, string>;
  modelRange?: boolean;
}

// Order matters: the first entry is A1111's default sampler.
const ROWS: Row[] = [
  { name: 'DPM++ 2M', upstream: 'sample_dpmpp_2m', aliases: ['k_dpmpp_2m'], sampler: sampleDpmpp2m, scheduler: 'karras' },
  {
    name: 'DPM++ SDE',
    upstream: 'sample_dpmpp_sde',
    aliases: ['k_dpmpp_sde'],
    sampler: sampleDpmppSde,
    scheduler: 'karras',
    secondOrder: true,
    brownian: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM++ 2M SDE',
    upstream: 'sample_dpmpp_2m_sde',
    aliases: ['k_dpmpp_2m_sde'],
    sampler: sampleDpmpp2mSde,
    scheduler: 'exponential',
    brownian: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM++ 2M SDE Heun',
    upstream: 'sample_dpmpp_2m_sde',
    aliases: ['k_dpmpp_2m_sde_heun'],
    sampler: sampleDpmpp2mSde,
    scheduler: 'exponential',
    brownian: true,
    eta: true,
    extra: S_NOISE,
    fixed: { solver_type: 'heun' },
  },
  {
    name: 'DPM++ 2S a',
    upstream: 'sample_dpmpp_2s_ancestral',
    aliases: ['k_dpmpp_2s_a'],
    sampler: sampleDpmpp2sAncestral,
    scheduler: 'karras',
    usesEnsd: true,
    secondOrder: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM++ 3M SDE',
    upstream: 'sample_dpmpp_3m_sde',
    aliases: ['k_dpmpp_3m_sde'],
    sampler: sampleDpmpp3mSde,
    scheduler: 'exponential',
    discard: true,
    brownian: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'Euler a',
    upstream: 'sample_euler_ancestral',
    aliases: ['k_euler_a', 'k_euler_ancestral'],
    sampler: sampleEulerAncestral,
    usesEnsd: true,
    eta: true,
  },
  { name: 'Euler', upstream: 'sample_euler', aliases: ['k_euler'], sampler: sampleEuler, extra: CHURN },
  { name: 'LMS', upstream: 'sample_lms', aliases: ['k_lms'], sampler: sampleLms },
  { name: 'Heun', upstream: 'sample_heun', aliases: ['k_heun'], sampler: sampleHeun, secondOrder: true, extra: CHURN },
  {
    name: 'DPM2',
    upstream: 'sample_dpm_2',
    aliases: ['k_dpm_2'],
    sampler: sampleDpm2,
    scheduler: 'karras',
    discard: true,
    secondOrder: true,
    extra: CHURN,
  },
  {
    name: 'DPM2 a',
    upstream: 'sample_dpm_2_ancestral',
    aliases: ['k_dpm_2_a'],
    sampler: sampleDpm2Ancestral,
    scheduler: 'karras',
    discard: true,
    usesEnsd: true,
    secondOrder: true,
    eta: true,
    extra: S_NOISE,
  },
  {
    name: 'DPM fast',
    upstream: 'sample_dpm_fast',
    aliases: ['k_dpm_fast'],
    sampler: sampleDpmFast,
    usesEnsd: true,
    eta: true,
    extra: S_NOISE,
    modelRange: true,
  },
  {
    name: 'DPM adaptive',
    upstream: 'sample_dpm_adaptive',
    aliases: ['k_dpm_ad'],
    sampler: sampleDpmAdaptive,
    usesEnsd: true,
    eta: true,
    modelRange: true,
  },
  {
    name: 'Restart',
    upstream: 'modules.sd_samplers_extra.restart_sampler',
    aliases: ['restart'],
    sampler: sampleRestart,
    scheduler: 'karras',
    secondOrder: true,
  },
  { name: 'DDIM', upstream: 'modules.sd_samplers_timesteps_impl.ddim', aliases: ['ddim'], family: 'timestep' },
  {
    name: 'DDIM CFG++',
    upstream: 'modules.sd_samplers_timesteps_impl.ddim_cfgpp',
    aliases: ['ddim_cfgpp'],
    family: 'timestep',
  },
  { name: 'PLMS', upstream: 'modules.sd_samplers_timesteps_impl.plms', aliases: ['plms'], family: 'timestep' },
  { name: 'UniPC', upstream: 'modules.sd_samplers_timesteps_impl.unipc', aliases: ['unipc'], family: 'timestep' },
  { name: 'LCM', upstream: 'modules.sd_samplers_lcm.sample_lcm', aliases: ['k_lcm'], family: 'lcm' },
];

function compVisSampler(name: string): Sampler {
  const s = compVisSamplers[name];
  if (!s) throw new Error(`no CompVis implementation for sampler ${name}`);
  return s;
}

export const SAMPLERS: readonly SamplerInfo[] = ROWS.map((r) => ({
  name: r.name,
  aliases: r.aliases,
  family: r.family ?? 'kdiffusion',
  upstream: r.upstream,
  sampler: r.sampler ?? compVisSampler(r.name),
  ...(r.scheduler ? { defaultScheduler: r.scheduler } : {}),
  discardPenultimate: r.discard ?? false,
  secondOrder: r.secondOrder ?? false,
  usesEnsd: r.usesEnsd ?? false,
  brownianNoise: r.brownian ?? false,
  takesEta: r.eta ?? false,
  extraParams: r.extra ?? [],
  fixedOptions: r.fixed ?? {},
  usesModelSigmaRange: r.modelRange ?? false,
}));

export const DEFAULT_SAMPLER: SamplerInfo = SAMPLERS[0]!;

const BY_NAME = new Map(SAMPLERS.map((s) => [s.name, s]));
const BY_ALIAS_LOWER = new Map<string, SamplerInfo>();
for (const s of SAMPLERS) {
  BY_ALIAS_LOWER.set(s.name.toLowerCase(), s);
  for (const a of s.aliases) BY_ALIAS_LOWER.set(a.toLowerCase(), s);
}

/** Exact display-name lookup (A1111's all_samplers_map). */
export function samplerByName(name: string): SamplerInfo | undefined {
  return BY_NAME.get(name);
}

/** Case-insensitive lookup by display name or alias (A1111's samplers_map: "k_euler_a" -> Euler a). */
export function samplerByAlias(name: string): SamplerInfo | undefined {
  return BY_ALIAS_LOWER.get(name.toLowerCase());
}

export interface ResolvedSampler {
  readonly sampler: SamplerInfo;
  /** Scheduler label ("Automatic", "Karras", ...). */
  readonly scheduler: string;
  /** True when the name (after any scheduler suffix) was no sampler's display name and the default took its place. */
  readonly fallback: boolean;
}

/**
 * A1111 `get_sampler_and_scheduler(sampler_name, scheduler_name)`: a trailing " <scheduler label|name|alias>"
 * is split off the sampler name (every scheduler is tried in order, so "Euler SGM Uniform" loses " Uniform"
 * and then is no sampler at all); unknown sampler names become the default sampler (DPM++ 2M); with
 * `convertAutomatic` a scheduler equal to the sampler's own default is reported as Automatic.
 */
export function resolveSamplerAndScheduler(
  samplerName: string | undefined | null,
  schedulerName?: string | null,
  convertAutomatic = true,
): ResolvedSampler {
  // A1111's schedulers_map: names and labels (not aliases).
  const byKey = (key: string | undefined | null) =>
    key == null ? undefined : SCHEDULERS.find((s) => s.name === key || s.label === key);
  let scheduler = byKey(schedulerName) ?? SCHEDULERS[0]!;
  let name = samplerName || DEFAULT_SAMPLER.name;
  for (const s of SCHEDULERS) {
    for (const option of [s.label, s.name, ...s.aliases]) {
      if (name.endsWith(' ' + option)) {
        scheduler = s;
        name = name.slice(0, -(option.length + 1));
        break;
      }
    }
  }
  const named = BY_NAME.get(name);
  const sampler = named ?? DEFAULT_SAMPLER;
  if (convertAutomatic && sampler.defaultScheduler === scheduler.name) scheduler = SCHEDULERS[0]!;
  return { sampler, scheduler: scheduler.label, fallback: named === undefined };
}

/** The scheduler name a (sampler, scheduler label) pair runs: "Automatic" becomes the sampler's default. */
export function effectiveScheduler(sampler: SamplerInfo, schedulerLabel: string): string {
  const s = SCHEDULERS.find((x) => x.label === schedulerLabel || x.name === schedulerLabel);
  if (!s || s.name === 'automatic') return sampler.defaultScheduler ?? 'uniform';
  return s.name;
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
