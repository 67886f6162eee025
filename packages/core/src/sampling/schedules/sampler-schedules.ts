/**
 * How A1111 picks the schedule for a sampler: KDiffusionSampler.get_sigmas (the sampler's default scheduler for
 * "Automatic", discard-next-to-last-sigma, option overrides of sigma_min/max/rho), CompVisSampler.get_timesteps
 * for the timestep samplers. Sampler names and their resolution are the catalog's (catalog/samplers.ts).
 */
import { DarkroomError } from '../../errors.js';
import { sdDiscreteSchedule } from './discrete.js';
import { samplerEntryByName, type SamplerFamily } from '../../catalog/samplers.js';
import { discreteSigmaModel, findScheduler, lcmSigmaModel, type SigmaModel } from './schedulers.js';

export interface SamplerScheduleConfig {
  readonly family: SamplerFamily;
  /** The sampler's default scheduler name (options['scheduler']), what "Automatic" resolves to. */
  readonly scheduler?: string;
  readonly discardNextToLastSigma?: boolean;
}

/** What a sampler's schedule depends on, from the catalog's sampler table. */
export function samplerScheduleConfig(sampler: string): SamplerScheduleConfig {
  const entry = samplerEntryByName(sampler);
  if (!entry) throw new DarkroomError('SAMPLER_UNKNOWN', `unknown sampler "${sampler}"`, { sampler });
  return {
    family: entry.family,
    ...(entry.defaultScheduler !== undefined ? { scheduler: entry.defaultScheduler } : {}),
    discardNextToLastSigma: entry.discardPenultimate,
  };
}

/** A1111 options that change schedules (defaults: all off / 0, beta 0.6 / 0.6). */
export interface ScheduleOptions {
  readonly alwaysDiscardNextToLastSigma?: boolean;
  readonly useOldKarrasSchedulerSigmas?: boolean;
  /** opts.sigma_min / sigma_max / rho: 0 = the scheduler's default. */
  readonly sigmaMin?: number;
  readonly sigmaMax?: number;
  readonly rho?: number;
  readonly betaAlpha?: number;
  readonly betaBeta?: number;
  readonly sdxl?: boolean;
  /** opts.enable_quantization (k-diffusion's quantized sigma_to_t). */
  readonly quantize?: boolean;
}

export interface SamplerSchedule {
  readonly sigmas: Float32Array;
  /** Entries A1111 adds to extra_generation_params ("Schedule type", "Discard penultimate sigma", ...). */
  readonly extraGenerationParams: Readonly<Record<string, string | number | boolean>>;
}

/**
 * KDiffusionSampler.get_sigmas (LCMSampler too): the sigma schedule for `steps` with `scheduler` ('Automatic', or a
 * scheduler name or label). `model` defaults to the SD discrete schedule (LCM's table for LCM).
 */
export function samplerSigmas(
  sampler: string,
  schedulerName: string,
  steps: number,
  opts: ScheduleOptions = {},
  model?: SigmaModel,
): SamplerSchedule {
  const config = samplerScheduleConfig(sampler);
  if (config.family === 'timestep') {
    throw new DarkroomError('SAMPLER_USES_TIMESTEPS', `${sampler} uses timesteps, not sigmas (see compVisTimesteps)`, {
      sampler,
    });
  }
  const extra: Record<string, string | number | boolean> = {};
  let discard = config.discardNextToLastSigma ?? false;
  if (opts.alwaysDiscardNextToLastSigma && !discard) {
    discard = true;
    extra['Discard penultimate sigma'] = true;
  }
  const n = steps + (discard ? 1 : 0);
  const m =
    model ??
    (config.family === 'lcm' ? lcmSigmaModel() : discreteSigmaModel(sdDiscreteSchedule(), opts.quantize ?? false));
  const name = schedulerName === 'Automatic' || schedulerName === 'automatic' ? config.scheduler : schedulerName;
  const scheduler = name === undefined ? undefined : findScheduler(name);
  if (name !== undefined && scheduler === undefined) {
    throw new DarkroomError('SCHEDULER_UNKNOWN', `unknown scheduler "${name}"`, { scheduler: name });
  }
  const mMin = m.sigmas[0]!;
  const mMax = m.sigmas[m.sigmas.length - 1]!;
  let sigmas: Float32Array;
  if (scheduler?.fn === undefined) {
    sigmas = m.getSigmas(n);
  } else {
    let sigmaMin = opts.useOldKarrasSchedulerSigmas ? 0.1 : mMin;
    let sigmaMax = opts.useOldKarrasSchedulerSigmas ? 10 : mMax;
    let rho: number | undefined;
    if (scheduler.label !== 'Automatic') extra['Schedule type'] = scheduler.label;
    if (opts.sigmaMin && opts.sigmaMin !== mMin) {
      sigmaMin = opts.sigmaMin;
      extra['Schedule min sigma'] = opts.sigmaMin;
    }
    if (opts.sigmaMax && opts.sigmaMax !== mMax) {
      sigmaMax = opts.sigmaMax;
      extra['Schedule max sigma'] = opts.sigmaMax;
    }
    if (scheduler.defaultRho !== -1 && opts.rho && opts.rho !== scheduler.defaultRho) {
      rho = opts.rho;
      extra['Schedule rho'] = opts.rho;
    }
    const betaAlpha = opts.betaAlpha ?? 0.6;
    const betaBeta = opts.betaBeta ?? 0.6;
    if (scheduler.label === 'Beta') {
      extra['Beta schedule alpha'] = betaAlpha;
      extra['Beta schedule beta'] = betaBeta;
    }
    sigmas = scheduler.fn(n, {
      sigmaMin,
      sigmaMax,
      model: m,
      betaAlpha,
      betaBeta,
      ...(rho !== undefined ? { rho } : {}),
      ...(opts.sdxl !== undefined ? { sdxl: opts.sdxl } : {}),
    });
  }
  if (discard) sigmas = discardPenultimate(sigmas);
  return { sigmas, extraGenerationParams: extra };
}

/** cat(sigmas[:-2], sigmas[-1:]): drops the next-to-last sigma. */
export function discardPenultimate(sigmas: Float32Array): Float32Array {
  if (sigmas.length < 2) return sigmas.slice();
  const out = new Float32Array(sigmas.length - 1);
  out.set(sigmas.subarray(0, sigmas.length - 2));
  out[out.length - 1] = sigmas[sigmas.length - 1]!;
  return out;
}

/**
 * CompVisSampler.get_timesteps: clip(arange(0, 1000, 1000 // steps) + 1, 0, 999), ascending (the samplers walk it
 * backwards). The scheduler setting is ignored; `discard` mirrors always_discard_next_to_last_sigma (steps + 1).
 */
export function compVisTimesteps(steps: number, opts: { discard?: boolean; timesteps?: number } = {}): Int32Array {
  const total = opts.timesteps ?? 1000;
  const n = steps + (opts.discard ? 1 : 0);
  const stride = Math.floor(total / n);
  if (stride <= 0) {
    throw new DarkroomError('SAMPLER_TOO_MANY_STEPS', `timestep samplers support at most ${total} steps`, { steps });
  }
  const out: number[] = [];
  for (let t = 0; t < total; t += stride) out.push(Math.min(Math.max(t + 1, 0), total - 1));
  return Int32Array.from(out);
}
