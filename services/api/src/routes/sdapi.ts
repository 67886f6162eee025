import { Router, type Request, type Response } from 'express';
import { parseGenerationParameters } from '@darkroom/core/formats/infotext.js';
import { SAMPLER_CATALOG } from '@darkroom/core/catalog/samplers.js';
import { SCHEDULER_CATALOG } from '@darkroom/core/catalog/schedulers.js';
import {
  BUILTIN_MODEL, failedJobError, FarmError, OptionsUpdate, previewKey, PngInfoRequest, QUEUE_NAMES, requestStop, SdapiImg2ImgRequest, SdapiTxt2ImgRequest, type GenerateKind,
  type GenerateRequest,
} from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { liveOn, noWorkerError } from '../fleet.js';
import { parseSdapi, SdapiValidationError } from '../sdapi-errors.js';
import { embeddingListing } from '../sdapi-embeddings.js';
import { checkSdapiSupported, samplerFallback } from '../sdapi-refusals.js';
import { sdapiControlRoutes } from './sdapi-control.js';
import { sdapiExtrasRoutes } from './sdapi-extras.js';
import { sdapiListingRoutes } from './sdapi-listings.js';
import { readPngInfo } from '../png-info.js';
import { cancelJob, waitForTerminal } from '../job-actions.js';
import { jobResult, jobView, loadJob } from '../job-view.js';
import { findModel, listModels } from '../models.js';
import { checkOptionsUpdate } from '../options-update.js';
import { OPTION_DEFAULTS, tenantOptions } from '../sdapi-options.js';
import { decodeImage, submitGenerate } from '../submit.js';
import { submitScriptFlow } from '../flow-submit.js';
import { interruptFlow, scriptResult, sdapiFlowProgress } from '../sdapi-scripts.js';
import { resolveVaeName } from '../vae-setting.js';

const GENERATION_OPTIONS = new Set(Object.keys(OPTION_DEFAULTS).filter((k) => !['samples_format', 'enable_pnginfo', 'live_previews_enable', 'show_progress_every_n_steps'].includes(k)));
const DARKROOM_FIELDS = ['model', 'embeddings', 'hypernetworks', 'webhook', 'clip_skip'] as const;

/**
 * Folds the tenant's saved options and the request's `override_settings` into the job, as A1111 applies them for
 * one request: the checkpoint becomes `model`, the rest travel to the engine in `override_settings`.
 */
async function applySettings(ctx: ApiContext, tenant: string, req: GenerateRequest): Promise<void> {
  const opts = await tenantOptions(ctx, tenant);
  const overrides: Record<string, unknown> = {};
  for (const k of GENERATION_OPTIONS) if (opts[k] !== OPTION_DEFAULTS[k]) overrides[k] = opts[k];
  Object.assign(overrides, req.override_settings ?? {});
  const checkpoint = overrides.sd_model_checkpoint;
  delete overrides.sd_model_checkpoint;
  if (checkpoint !== undefined) {
    if (typeof checkpoint !== 'string') throw new FarmError('INVALID_REQUEST', 400, 'sd_model_checkpoint must be a string', 'override_settings.sd_model_checkpoint');
    const m = findModel(await listModels(ctx.registry, ctx.cfg.modelsDir, tenant), checkpoint);
    if (!m) throw new FarmError('UNKNOWN_MODEL', 400, `model "${checkpoint}" not found`, 'override_settings.sd_model_checkpoint');
    req.model = m.source === 'builtin' ? null : m.model_name;
  }
  req.override_settings = Object.keys(overrides).length > 0 ? overrides : null;
}

function echoParameters(req: GenerateRequest, raw: GenerateRequest): Record<string, unknown> {
  const p: Record<string, unknown> = { ...raw };
  for (const f of DARKROOM_FIELDS) delete p[f];
  // A1111 echoes the init images (and mask) only when asked, and never the switch itself (excluded from its model).
  if ('init_images' in req && !('include_init_images' in raw && raw.include_init_images)) {
    p.init_images = null;
    p.mask = null;
  }
  delete p.include_init_images;
  return p;
}

/** A1111's state.job_timestamp: the job's start, `YYYYmmddHHMMSS`. */
function jobTimestamp(iso: string | null | undefined): string {
  return (iso ?? new Date().toISOString()).replace(/[-:T]/g, '').slice(0, 14);
}

/**
 * `override_settings_restore_afterwards: false`: A1111 leaves the request's settings in place after the job, so they
 * become the tenant's options, checked as a POST to /sdapi/v1/options would be.
 */
async function keptOverrides(ctx: ApiContext, tenant: string, overrides: Record<string, unknown>): Promise<Record<string, string>> {
  const update = { ...overrides };
  checkOptionsUpdate(update);
  if (typeof update.sd_model_checkpoint === 'string') {
    const m = findModel(await listModels(ctx.registry, ctx.cfg.modelsDir, tenant), update.sd_model_checkpoint);
    if (!m) throw new FarmError('UNKNOWN_MODEL', 400, `model "${update.sd_model_checkpoint}" not found`, 'override_settings.sd_model_checkpoint');
    update.sd_model_checkpoint = m.title;
  }
  if ('sd_vae' in update) await resolveVaeName(ctx.registry, ctx.cfg.modelsDir, tenant, update.sd_vae, 'override_settings.sd_vae');
  return Object.fromEntries(Object.entries(update).map(([k, v]) => [k, JSON.stringify(v)]));
}

/** A1111's info JSON; `indexOfFirstImage` is how many grids lead the images (a script's response). */
function infoJson(
  req: GenerateRequest, view: { outputs: readonly { seed: number; subseed: number; infotext: string }[] }, jobTimestamp: string, indexOfFirstImage = 0,
  extra: Record<string, unknown> = {},
): string {
  const infotexts = view.outputs.map((o) => o.infotext);
  const first = infotexts[0] ?? '';
  const parsed = parseGenerationParameters(first);
  const str = (k: string): string | null => (parsed.has(k) ? String(parsed.get(k)) : null);
  const prompts = infotexts.map((t) => String(parseGenerationParameters(t).get('Prompt') ?? ''));
  const negatives = infotexts.map((t) => String(parseGenerationParameters(t).get('Negative prompt') ?? ''));
  return JSON.stringify({
    prompt: req.prompt,
    all_prompts: prompts.length ? prompts : [req.prompt],
    negative_prompt: req.negative_prompt,
    all_negative_prompts: negatives.length ? negatives : [req.negative_prompt],
    seed: view.outputs[0]?.seed ?? req.seed,
    all_seeds: view.outputs.map((o) => o.seed),
    subseed: view.outputs[0]?.subseed ?? req.subseed,
    all_subseeds: view.outputs.map((o) => o.subseed),
    subseed_strength: req.subseed_strength,
    width: req.width,
    height: req.height,
    sampler_name: str('Sampler') ?? req.sampler_name ?? req.sampler_index,
    cfg_scale: req.cfg_scale,
    steps: req.steps,
    batch_size: req.batch_size,
    restore_faces: false,
    face_restoration_model: null,
    sd_model_name: str('Model') ?? BUILTIN_MODEL,
    sd_model_hash: str('Model hash'),
    sd_vae_name: str('VAE'),
    sd_vae_hash: str('VAE hash'),
    seed_resize_from_w: req.seed_resize_from_w,
    seed_resize_from_h: req.seed_resize_from_h,
    denoising_strength: req.denoising_strength,
    extra_generation_params: {},
    index_of_first_image: indexOfFirstImage,
    infotexts,
    styles: req.styles ?? [],
    job_timestamp: jobTimestamp,
    clip_skip: Number(parsed.get('Clip skip') ?? 1),
    // A1111 writes "Conditional mask weight" exactly when the job ran with inpainting conditioning
    is_using_inpainting_conditioning: parsed.has('Conditional mask weight'),
    version: str('Version'),
    ...extra,
  });
}

/** A1111's `/sdapi/v1`: same paths, fields and shapes, backed by the queue (generation calls wait for their job). */
export function sdapiRoutes(ctx: ApiContext): Router {
  const r = Router();

  const generate = (kind: GenerateKind) => async (req: Request, res: Response) => {
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      throw new SdapiValidationError([{ loc: ['body'], msg: 'value is not a valid dict', type: 'type_error.dict' }]);
    }
    const tenant = tenantOf(res);
    const raw: GenerateRequest = kind === 'txt2img' ? parseSdapi(SdapiTxt2ImgRequest, req.body) : parseSdapi(SdapiImg2ImgRequest, req.body);
    checkSdapiSupported(raw);
    const request: GenerateRequest = { ...raw, webhook: null, embeddings: null, hypernetworks: [], model: null, clip_skip: null };
    // A1111 runs `sampler_name or sampler_index`: an empty name means sampler_index (Euler by default).
    if (request.sampler_name === '') request.sampler_name = null;
    await applySettings(ctx, tenant, request);
    const fallback = samplerFallback(raw);
    // Checked before the job is queued, stored once it is: a refused value must not leave a job behind.
    const kept = !raw.override_settings_restore_afterwards && raw.override_settings ? await keptOverrides(ctx, tenant, raw.override_settings) : {};
    // A script runs as a flow of jobs over the workers (sdapi-scripts.ts); the call waits for the flow's end alike.
    const scripted = raw.script_name !== null && raw.script_name !== '';
    const { id } = scripted
      ? await submitScriptFlow(ctx, tenant, kind, request, req.body, { idempotencyKey: req.get('idempotency-key') })
      : await submitGenerate(ctx, tenant, kind, request, req.body, { idempotencyKey: req.get('idempotency-key'), source: 'sdapi' });
    await ctx.redis.set(ctx.keys.sdapiCurrent(tenant), id, 'EX', 86400);
    if (Object.keys(kept).length > 0) await ctx.redis.hset(ctx.keys.options(tenant), kept);
    const aborted = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) aborted.abort();
    });
    // Workers that all die mid-render leave the job queued; the caller hears it now, not at SYNC_TIMEOUT_MS.
    const unserved = async () => ((await liveOn(ctx, QUEUE_NAMES.generate)).length === 0 ? noWorkerError(id) : null);
    const terminal = await waitForTerminal(ctx, id, ctx.cfg.syncTimeoutMs, aborted.signal, unserved);
    if (aborted.signal.aborted) return;
    if (!terminal) throw new FarmError('TIMEOUT', 504, `job ${id} did not finish within SYNC_TIMEOUT_MS; follow it at /v1/${scripted ? 'flows' : 'jobs'}/${id}`);
    if (scripted) {
      const out = await scriptResult(ctx, tenant, id, raw.send_images, raw.save_images);
      if (fallback) res.set('X-Darkroom-Sampler-Fallback', fallback.replace(/[^\x20-\x7e]/g, '?'));
      // Darkroom's addition to the info: A1111's seed travel writes its video to disk and answers only the frames.
      const extra = out.animations.length > 0 ? { animations: out.animations } : {};
      const info = infoJson(request, out, jobTimestamp(out.startedAt), out.grids, extra);
      res.set('X-Darkroom-Flow-Id', id).json({ images: out.images, parameters: echoParameters(request, raw), info });
      return;
    }
    const view = (await jobView(ctx, tenant, id))!;
    if (view.state === 'failed') {
      const code = view.error?.code ?? 'RENDER_FAILED';
      throw failedJobError(code, view.error?.message ?? 'render failed');
    }
    const job = await loadJob(ctx, tenant, id);
    const outputs = (job ? await jobResult(ctx, job) : null)?.outputs ?? [];
    const images: string[] = [];
    if (raw.send_images) {
      for (const o of outputs) {
        const bytes = await ctx.storage.get(o.key);
        if (bytes) images.push(Buffer.from(bytes).toString('base64'));
      }
    }
    if (!raw.save_images) {
      // A1111 writes nothing to its outputs folder unless save_images is set: the farm keeps no copy either.
      for (const o of outputs) await ctx.storage.delete(o.key);
    }
    if (fallback) res.set('X-Darkroom-Sampler-Fallback', fallback.replace(/[^\x20-\x7e]/g, '?'));
    res.set('X-Darkroom-Job-Id', id).json({ images, parameters: echoParameters(request, raw), info: infoJson(request, view, jobTimestamp(view.started_at)) });
  };
  r.post('/sdapi/v1/txt2img', generate('txt2img'));
  r.post('/sdapi/v1/img2img', generate('img2img'));

  r.get('/sdapi/v1/progress', async (req, res) => {
    const tenant = tenantOf(res);
    const id = await ctx.redis.get(ctx.keys.sdapiCurrent(tenant));
    const flow = id ? await sdapiFlowProgress(ctx, tenant, id, req.query.skip_current_image !== 'true') : null;
    if (flow) {
      res.json(flow);
      return;
    }
    const view = id ? await jobView(ctx, tenant, id) : null;
    // A1111 keeps the last job's timestamp after it ends ('0' before any job) and names the running task.
    const idle = {
      skipped: false, interrupted: false, stopping_generation: false, job: '', job_count: 0,
      job_timestamp: view ? jobTimestamp(view.started_at ?? view.created_at) : '0', job_no: 0, sampling_step: 0, sampling_steps: 0,
    };
    if (!view || (view.state !== 'running' && view.state !== 'queued')) {
      const interrupted = view?.state === 'cancelled' || (view !== null && (await ctx.redis.get(ctx.keys.sdapiInterrupted(tenant))) === view.id);
      res.json({ progress: 0, eta_relative: 0, state: { ...idle, interrupted }, current_image: null, textinfo: null, current_task: null });
      return;
    }
    const p = view.progress;
    const jobCount = p?.iterations ?? 1;
    const jobNo = p?.iteration ?? 0;
    let progress = 0.01 + jobNo / jobCount + (p && p.steps > 0 ? (1 / jobCount) * (p.step / p.steps) : 0);
    const elapsed = view.started_at ? (Date.now() - Date.parse(view.started_at)) / 1000 : 0;
    const eta = elapsed / progress - elapsed;
    progress = Math.min(progress, 1);
    let currentImage: string | null = null;
    if (p?.preview && req.query.skip_current_image !== 'true') {
      const bytes = await ctx.storage.get(previewKey(tenant, view.id));
      currentImage = bytes ? Buffer.from(bytes).toString('base64') : null;
    }
    res.json({
      progress, eta_relative: eta,
      state: { ...idle, job: `job ${view.id}`, job_count: jobCount, job_no: jobNo, sampling_step: p?.step ?? 0, sampling_steps: p?.steps ?? 0 },
      // A1111's task id is the request's force_task_id when it sent one; here the job id otherwise.
      current_image: currentImage, textinfo: null, current_task: (await loadJob(ctx, tenant, view.id))?.data.request.force_task_id ?? view.id,
    });
  });

  /**
   * A1111's interrupt: the running job stops sampling, decodes what it reached and returns those images (the
   * waiting txt2img/img2img call gets them); a job not started yet is cancelled, as it would never have started.
   */
  r.post('/sdapi/v1/interrupt', async (_req, res) => {
    const tenant = tenantOf(res);
    const id = await ctx.redis.get(ctx.keys.sdapiCurrent(tenant));
    const job = id ? await loadJob(ctx, tenant, id) : null;
    if (id && job) {
      if ((await job.getState()) === 'active') {
        await ctx.redis.set(ctx.keys.sdapiInterrupted(tenant), id, 'EX', 86400);
        await requestStop(ctx.redis, ctx.keys, id, 'interrupt');
      } else {
        await cancelJob(ctx, tenant, id);
      }
    } else if (id) {
      await interruptFlow(ctx, tenant, id);
    }
    res.json({});
  });

  r.get('/sdapi/v1/samplers', (_req, res) => {
    res.json(SAMPLER_CATALOG.map((s) => ({
      name: s.name, aliases: s.aliases,
      options: { ...(s.defaultScheduler ? { scheduler: s.defaultScheduler } : {}), ...(s.secondOrder ? { second_order: 'True' } : {}), ...(s.usesEnsd ? { uses_ensd: 'True' } : {}), ...(s.brownianNoise ? { brownian_noise: 'True' } : {}), ...(s.discardPenultimate ? { discard_next_to_last_sigma: 'True' } : {}) },
    })));
  });

  r.get('/sdapi/v1/schedulers', (_req, res) => {
    res.json(SCHEDULER_CATALOG.map((s) => ({ name: s.name, label: s.label, aliases: s.aliases.length ? s.aliases : null, default_rho: s.defaultRho, need_inner_model: s.needInnerModel })));
  });

  r.get('/sdapi/v1/sd-models', async (_req, res) => {
    const models = await listModels(ctx.registry, ctx.cfg.modelsDir, tenantOf(res));
    res.json(models.map(({ title, model_name, hash, sha256, filename, config }) => ({ title, model_name, hash, sha256, filename, config })));
  });

  r.get('/sdapi/v1/embeddings', async (_req, res) => {
    res.json(await embeddingListing(ctx, tenantOf(res)));
  });

  r.get('/sdapi/v1/hypernetworks', async (_req, res) => {
    res.json((await ctx.registry.list(tenantOf(res), 'hypernetworks')).map((h) => ({ name: h.name, path: h.filename })));
  });

  r.post('/sdapi/v1/png-info', async (req, res) => {
    const { image } = parseSdapi(PngInfoRequest, req.body);
    res.json(await readPngInfo(decodeImage(image, 'image', Number.POSITIVE_INFINITY)));
  });

  r.get('/sdapi/v1/options', async (_req, res) => {
    res.json(await tenantOptions(ctx, tenantOf(res)));
  });

  r.post('/sdapi/v1/options', async (req, res) => {
    const tenant = tenantOf(res);
    const update = parseSdapi(OptionsUpdate, req.body);
    checkOptionsUpdate(update);
    if (typeof update.sd_model_checkpoint === 'string') {
      const m = findModel(await listModels(ctx.registry, ctx.cfg.modelsDir, tenant), update.sd_model_checkpoint);
      if (!m) throw new FarmError('UNKNOWN_MODEL', 400, `model "${update.sd_model_checkpoint}" not found`, 'sd_model_checkpoint');
      update.sd_model_checkpoint = m.title;
    }
    // A VAE name every later job would fail on is refused now (the stored value is the name as sent).
    if ('sd_vae' in update) await resolveVaeName(ctx.registry, ctx.cfg.modelsDir, tenant, update.sd_vae, 'sd_vae');
    if (Object.keys(update).length > 0) {
      await ctx.redis.hset(ctx.keys.options(tenant), Object.fromEntries(Object.entries(update).map(([k, v]) => [k, JSON.stringify(v)])));
    }
    res.json(null);
  });

  r.get('/sdapi/v1/cmd-flags', (_req, res) => res.json({ api: true, nowebui: true }));

  r.use(sdapiListingRoutes(ctx), sdapiControlRoutes(ctx), sdapiExtrasRoutes(ctx));
  return r;
}
