import { BUILTIN_MODEL, FarmError } from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { findModel, listModels } from './models.js';

/** Settings `/sdapi/v1/options` reports and accepts, with A1111's defaults; those marked apply to generation. */
export const OPTION_DEFAULTS: Record<string, unknown> = {
  sd_model_checkpoint: BUILTIN_MODEL,
  CLIP_stop_at_last_layers: 1,
  eta_noise_seed_delta: 0,
  randn_source: 'GPU',
  eta_ancestral: 1.0,
  eta_ddim: 0.0,
  s_churn: 0.0,
  s_tmin: 0.0,
  s_tmax: 0.0,
  s_noise: 1.0,
  emphasis: 'Original',
  comma_padding_backtrack: 20,
  pad_cond_uncond: false,
  batch_cond_uncond: true,
  // A1111 reads these when a request leaves them out (tiling: null, initial_noise_multiplier: null)
  tiling: false,
  initial_noise_multiplier: 1.0,
  inpainting_mask_weight: 1.0,
  samples_format: 'png',
  sd_vae: 'Automatic',
  enable_pnginfo: true,
  live_previews_enable: false,
  show_progress_every_n_steps: 10,
};

export async function tenantOptions(ctx: ApiContext, tenant: string): Promise<Record<string, unknown>> {
  const stored = await ctx.redis.hgetall(ctx.keys.options(tenant));
  const out: Record<string, unknown> = { ...OPTION_DEFAULTS };
  for (const [k, v] of Object.entries(stored)) out[k] = JSON.parse(v) as unknown;
  return out;
}

/**
 * The checkpoint A1111 would have loaded for this tenant (`sd_model_checkpoint`), as jobs name it (null = the
 * demo model): what A1111's create and train calls work on.
 */
export async function tenantCheckpoint(ctx: ApiContext, tenant: string, options: Record<string, unknown>): Promise<string | null> {
  const title = options.sd_model_checkpoint;
  if (typeof title !== 'string' || title === BUILTIN_MODEL) return null;
  const m = findModel(await listModels(ctx.registry, ctx.cfg.modelsDir, tenant), title);
  if (!m) {
    throw new FarmError('UNKNOWN_MODEL', 400, `sd_model_checkpoint: the checkpoint "${title}" set in /sdapi/v1/options is gone; set another`, 'sd_model_checkpoint');
  }
  return m.source === 'builtin' ? null : m.model_name;
}

/** The tenant's `CLIP_stop_at_last_layers`, which A1111's training reads from the settings. */
export function tenantClipSkip(options: Record<string, unknown>): number {
  const v = options.CLIP_stop_at_last_layers;
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 12 ? v : 1;
}
