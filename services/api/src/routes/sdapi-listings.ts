import { Router } from 'express';
import { HIRES_UPSCALERS, isLatentUpscaler } from '@darkroom/core/catalog/upscalers.js';
import { QUEUE_NAMES } from '@darkroom/farm';
import { listUpscalerDirs, realesrganItems, upscalerItems } from '@darkroom/farm/upscaler-assets.js';
import { listVaeDir, sdVaeItems } from '@darkroom/farm/vae-assets.js';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { flowScriptInfos, flowScriptNames } from '../flow-scripts.js';
import { liveOn } from '../fleet.js';

/**
 * A1111's listing routes for what a farm has beyond checkpoints and networks: each answers from what the engine
 * and the fleet really have, in A1111's item shapes, so a client that builds its menus from them offers only what
 * renders. Where the farm has none of a thing (face restorers, scripts, extensions)
 * the list is empty rather than absent.
 */
export function sdapiListingRoutes(ctx: ApiContext): Router {
  const r = Router();

  // A1111 lists its image upscalers here (UpscalerItem) and the latent modes separately: the built-ins, then the
  // tenant's upscaler uploads and MODELS_DIR's ESRGAN / RealESRGAN files (farm/upscaler-assets.ts).
  r.get('/sdapi/v1/upscalers', async (_req, res) => {
    res.json(upscalerItems(await ctx.registry.list(tenantOf(res), 'upscalers'), await listUpscalerDirs(ctx.cfg.modelsDir)));
  });

  r.get('/sdapi/v1/latent-upscale-modes', (_req, res) => {
    res.json(HIRES_UPSCALERS.filter(isLatentUpscaler).map((name) => ({ name })));
  });

  // The tenant's VAE uploads and MODELS_DIR/VAE, as `sd_vae` names them (farm/vae-assets.ts).
  r.get('/sdapi/v1/sd-vae', async (_req, res) => {
    res.json(sdVaeItems(await ctx.registry.list(tenantOf(res), 'vaes'), await listVaeDir(ctx.cfg.modelsDir)));
  });
  r.get('/sdapi/v1/face-restorers', (_req, res) => res.json([]));
  // A1111 lists the Real-ESRGAN models it can download; a farm downloads nothing, so it lists those it has.
  r.get('/sdapi/v1/realesrgan-models', async (_req, res) => {
    res.json(realesrganItems(await ctx.registry.list(tenantOf(res), 'upscalers'), await listUpscalerDirs(ctx.cfg.modelsDir)));
  });
  // The built-in scripts that run as flows, by A1111's names (lower-cased titles) and with their ui() arguments.
  r.get('/sdapi/v1/scripts', (_req, res) => res.json({ txt2img: flowScriptNames('txt2img'), img2img: flowScriptNames('img2img') }));
  r.get('/sdapi/v1/script-info', (_req, res) => res.json(flowScriptInfos()));
  r.get('/sdapi/v1/extensions', (_req, res) => res.json([]));

  // The built-in Lora extension's two routes. A1111's `path` is where its server keeps the file; a farm's files
  // live in storage by content hash, so the tenant's file name stands in (no server path is ever shown). Alias
  // and metadata were read from the file at upload.
  r.get('/sdapi/v1/loras', async (_req, res) => {
    const items = await ctx.registry.list(tenantOf(res), 'loras');
    res.json(items.map((l) => ({ name: l.name, alias: l.alias ?? l.name, path: l.filename, metadata: l.metadata ?? {} })));
  });
  // Every listing and every job reads the tenant's LoRAs afresh: nothing is left to rescan. A1111 answers null.
  r.post('/sdapi/v1/refresh-loras', (_req, res) => {
    res.set('X-Darkroom-No-Op', 'listings and jobs read the tenant\'s LoRA uploads on every call').json(null);
  });

  /**
   * A1111 reports its one process: RAM as free/used/total and CUDA's allocator. A farm's figures are its live
   * generation workers': total is the sum of their memory budgets, used the sum of their resident memory at their
   * last heartbeat. The engine runs on onnxruntime, which has no CUDA allocator statistics to report, so `cuda`
   * says so as A1111 does where torch has no CUDA.
   */
  r.get('/sdapi/v1/memory', async (_req, res) => {
    const live = await liveOn(ctx, QUEUE_NAMES.generate);
    const total = live.reduce((s, w) => s + w.budgetBytes, 0);
    const used = live.reduce((s, w) => s + (w.rssBytes ?? 0), 0);
    res.json({
      ram: live.length === 0 ? { error: 'no generation worker is alive' } : { free: Math.max(0, total - used), used, total, workers: live.length },
      cuda: { error: 'unavailable' },
    });
  });

  return r;
}
