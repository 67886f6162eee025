import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AssetCache } from '@darkroom/farm';
import type { JobUpscaler } from '@darkroom/farm/upscaler-assets.js';
import { DarkroomError } from '@darkroom/core/errors.js';

/**
 * The upscaler model files the API resolved a job's names to, as the engine takes them ({path, name}): uploads
 * fetched into the worker's cache by content hash (held until the job ends, so a later upload under the same name
 * does not change a job already queued), MODELS_DIR files read where they are.
 */
export async function jobUpscalerFiles(
  ctx: { cache: AssetCache; cfg: { modelsDir: string } }, upscalers: readonly JobUpscaler[], held: Set<string>,
): Promise<Array<{ path: string; name: string }>> {
  return Promise.all(upscalers.map(async (u) => {
    if ('sha256' in u) return { path: await ctx.cache.fetch('upscalers', u.sha256, u.filename, held), name: u.name };
    const path = join(ctx.cfg.modelsDir, u.modelsDirPath);
    if (!existsSync(path)) throw new DarkroomError('UPSCALER_NOT_FOUND', `upscaler "${u.name}" is gone from MODELS_DIR (${u.modelsDirPath})`);
    return { path, name: u.name };
  }));
}
