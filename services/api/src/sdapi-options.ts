import { DEFAULT_SETTINGS, type Settings } from '@darkroom/core/pipeline/params.js';
import { BUILTIN_MODEL, FarmError } from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { findModel, listModels } from './models.js';

/** The engine settings `/sdapi/v1/options` reports and accepts; their defaults are core's DEFAULT_SETTINGS. */
const ENGINE_OPTIONS = [
  'CLIP_stop_at_last_layers',
  'eta_noise_seed_delta',
  'randn_source',
  'eta_ancestral',
  'eta_ddim',
  's_churn',
  's_tmin',
  's_tmax',
  's_noise',
  'emphasis',
  'comma_padding_backtrack',
  'pad_cond_uncond',
  'batch_cond_uncond',
  // A1111 reads these when a request leaves them out (tiling: null, initial_noise_multiplier: null)
  'tiling',
  'initial_noise_multiplier',
  'inpainting_mask_weight',
] as const satisfies readonly (keyof Settings)[];

/** Settings `/sdapi/v1/options` reports and accepts, with A1111's defaults: the engine's, then the farm's own. */
export const OPTION_DEFAULTS: Record<string, unknown> = {
  sd_model_checkpoint: BUILTIN_MODEL,
  ...Object.fromEntries(ENGINE_OPTIONS.map((k) => [k, DEFAULT_SETTINGS[k]])),
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
