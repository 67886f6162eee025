/**
 * The CompVis-family samplers behind the common Sampler contract, keyed by A1111 display name.
 *
 * DDIM, DDIM CFG++, PLMS and UniPC call `ctx.eps` (the eps model on the VP latent) and start from the *unscaled*
 * initial noise; they ignore `ctx.sigmas` and `ctx.denoise` and walk A1111's timesteps for `ctx.options.steps`
 * (compVisTimesteps; without the option, `ctx.sigmas.length - 1` steps). For img2img, `ctx.options.tEnc` keeps the
 * first t_enc timesteps as A1111's sample_img2img does (start latent from compVisImg2ImgStart). DDIM reads
 * `ctx.options.eta` (A1111's eta_ddim, default 0); UniPC reads `variant` ('bh1' | 'bh2'), `order`, `lowerOrderFinal`.
 *
 * LCM calls `ctx.denoise`, which must be the LCM denoiser (denoisers.ts lcmDenoiser), over `ctx.sigmas`, from
 * noise * sigmas[0] like the k-diffusion samplers.
 */
import { float32, type Float32Tensor } from '../../tensor.js';
import { DarkroomError } from '../../errors.js';
import type { EpsModel, GuidedEpsModel, Sampler, SamplerContext } from '../types.js';
import { compVisTimesteps } from '../schedules/sampler-schedules.js';
import { sdDiscreteSchedule } from '../schedules/discrete.js';
import { sampleDdim, sampleDdimCfgpp } from './ddim.js';
import { samplePlms } from './plms.js';
import { sampleUnipc, type UniPcVariant } from './unipc.js';
import { sampleLcm } from './lcm.js';
import { f } from './common.js';

export { sampleDdim, sampleDdimCfgpp, DDIM_CFGPP_SCALE_MULTIPLIER, type GuidedEpsModel } from './ddim.js';
export { samplePlms } from './plms.js';
export { sampleUnipc, DiscreteVpSchedule, type UniPcOptions, type UniPcVariant } from './unipc.js';
export { sampleLcm } from './lcm.js';

function epsOf(ctx: SamplerContext, name: string): EpsModel {
  if (!ctx.eps) throw new DarkroomError('SAMPLER_NEEDS_EPS', `${name} calls the eps model; the context has none`, {});
  return ctx.eps;
}

/** An eps model without guidance: its prediction is the unconditional one, and a CFG scale changes nothing. */
function plainAsGuided(eps: EpsModel): GuidedEpsModel {
  return async (x, t) => {
    const e = await eps(x, t);
    return { eps: e, uncondEps: e };
  };
}

function numberOption(ctx: SamplerContext, key: string): number | undefined {
  const v = ctx.options?.[key];
  return typeof v === 'number' ? v : undefined;
}

/** The timesteps a CompVis sampler walks for this context (txt2img, or img2img with options.tEnc). */
export function contextTimesteps(ctx: SamplerContext): Int32Array {
  const steps = numberOption(ctx, 'steps') ?? ctx.sigmas.length - 1;
  const all = compVisTimesteps(steps);
  const tEnc = numberOption(ctx, 'tEnc');
  return tEnc === undefined ? all : all.slice(0, tEnc);
}

/**
 * A1111's CompVisSampler.sample_img2img start latent: x * sqrt(acp[t]) + noise * sqrt(1 - acp[t]) with
 * t = timesteps[tEnc] (float32).
 */
export function compVisImg2ImgStart(
  initLatent: Float32Tensor,
  noise: Float32Tensor,
  steps: number,
  tEnc: number,
  alphasCumprod: Float32Array = sdDiscreteSchedule().alphasCumprod,
): Float32Tensor {
  const a = alphasCumprod[compVisTimesteps(steps)[tEnc]!]!;
  const sa = f(Math.sqrt(a));
  const s1 = f(Math.sqrt(f(1 - a)));
  return float32(
    initLatent.shape,
    Float32Array.from(initLatent.data, (v, i) => f(f(v * sa) + f(noise.data[i]! * s1))),
  );
}

const ddim: Sampler = (x, ctx) =>
  sampleDdim(x, contextTimesteps(ctx), epsOf(ctx, 'DDIM'), ctx.noise, {
    eta: numberOption(ctx, 'eta') ?? 0,
    ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });

/** Uses the guided eps model when the context has one; a plain eps model (no CFG) stands in for both preds. */
const ddimCfgpp: Sampler = (x, ctx) => {
  const guided = ctx.guidedEps ?? plainAsGuided(epsOf(ctx, 'DDIM CFG++'));
  return sampleDdimCfgpp(
    x,
    contextTimesteps(ctx),
    guided,
    ctx.noise,
    {
      eta: numberOption(ctx, 'eta') ?? 0,
      ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
    },
  );
};

const plms: Sampler = (x, ctx) =>
  samplePlms(x, contextTimesteps(ctx), epsOf(ctx, 'PLMS'), {
    ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });

const unipc: Sampler = (x, ctx) => {
  const timesteps = contextTimesteps(ctx);
  const variant = ctx.options?.variant;
  const lowerOrderFinal = ctx.options?.lowerOrderFinal;
  const order = numberOption(ctx, 'order');
  const img2img = numberOption(ctx, 'tEnc') !== undefined;
  return sampleUnipc(x, timesteps.length, epsOf(ctx, 'UniPC'), {
    ...(variant === 'bh1' || variant === 'bh2' ? { variant: variant as UniPcVariant } : {}),
    ...(typeof lowerOrderFinal === 'boolean' ? { lowerOrderFinal } : {}),
    ...(order !== undefined ? { order } : {}),
    ...(img2img ? { tStart: f(f(timesteps[timesteps.length - 1]! / 1000) + f(1 / 1000)) } : {}),
    ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
};

const lcm: Sampler = (x, ctx) =>
  sampleLcm(x, ctx.sigmas, ctx.denoise, ctx.noise, {
    ...(ctx.onStep ? { onStep: ctx.onStep } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });

/** Display name -> Sampler for the samplers that are not k-diffusion's. */
export const compVisSamplers: Readonly<Record<string, Sampler>> = {
  DDIM: ddim,
  'DDIM CFG++': ddimCfgpp,
  PLMS: plms,
  UniPC: unipc,
  LCM: lcm,
};
