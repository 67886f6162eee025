import { Job } from 'bullmq';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import {
  failedJobError, fairPriority, FarmError, leftWaiting, inputKey, newJobId, QUEUE_NAMES, readImageSize, sha256Hex, splitFailedReason, type GenerateJobData, type GenerateJobResult,
} from '@darkroom/farm';
import { readJobOutcome } from '@darkroom/farm/job-outcome.js';
import { EXTRAS_JOB_NAME, extrasOutputSize, type ExtrasJobData } from '@darkroom/farm/extras-jobs.js';
import type { JobUpscaler } from '@darkroom/farm/upscaler-assets.js';
import type { PostprocessUpscaleParams } from '@darkroom/core/pipeline/postprocess.js';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { liveOn, noWorkerError } from '../fleet.js';
import { parseSdapi, unsupported } from '../sdapi-errors.js';
import { decodeImage } from '../submit.js';
import { upscalerResolver } from '../upscaler-setting.js';

/** A1111's ExtrasBaseRequest fields and bounds (modules/api/models.py). */
const extrasBase = {
  resize_mode: z.union([z.literal(0), z.literal(1)]).default(0),
  show_extras_results: z.boolean().default(true),
  gfpgan_visibility: z.number().min(0).max(1).default(0),
  codeformer_visibility: z.number().min(0).max(1).default(0),
  codeformer_weight: z.number().min(0).max(1).default(0),
  upscaling_resize: z.number().gt(0).default(2),
  upscaling_resize_w: z.number().int().min(1).default(512),
  upscaling_resize_h: z.number().int().min(1).default(512),
  upscaling_crop: z.boolean().default(true),
  upscaler_1: z.string().default('None'),
  upscaler_2: z.string().default('None'),
  extras_upscaler_2_visibility: z.number().min(0).max(1).default(0),
  upscale_first: z.boolean().default(false),
};
export const ExtrasSingleImageRequest = z.object({ ...extrasBase, image: z.string().default('') });
export const ExtrasBatchImagesRequest = z.object({ ...extrasBase, imageList: z.array(z.object({ data: z.string(), name: z.string() })) });
type ExtrasBase = z.infer<typeof ExtrasSingleImageRequest>;

/** How often a waiting call looks at its job (extras jobs take milliseconds to seconds). */
const POLL_MS = 100;

/** ui_common.plaintext_to_html: each line HTML-escaped (Python's html.escape), joined by `<br>`, in one `<p>`. */
export function plaintextToHtml(text: string): string {
  const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#x27;');
  return `<p>${text.split('\n').map(escapeHtml).join('<br>\n')}</p>`;
}

/**
 * The request's upscaler names resolved for the tenant (built-ins, uploads, MODELS_DIR) and the face restorers
 * refused: the farm has none, and a restorer asked for must not be skipped silently. A1111 fails the call on a name
 * it cannot find; the farm refuses it before queueing, naming the field.
 */
async function checkedParams(ctx: ApiContext, tenant: string, body: ExtrasBase): Promise<{ params: PostprocessUpscaleParams; upscalers: JobUpscaler[] }> {
  if (body.gfpgan_visibility > 0) throw unsupported('gfpgan_visibility', 'this farm has no face restorer (GET /sdapi/v1/face-restorers lists none)');
  if (body.codeformer_visibility > 0) throw unsupported('codeformer_visibility', 'this farm has no face restorer (GET /sdapi/v1/face-restorers lists none)');
  const resolve = await upscalerResolver(ctx.registry, ctx.cfg.modelsDir, tenant);
  const upscalers: JobUpscaler[] = [];
  // upscaler_2 is looked up only when upscaler_1 runs (ScriptPostprocessingUpscale.process returns before it)
  const names: Array<[field: string, name: string]> = body.upscaler_1 === 'None' ? [] : [['upscaler_1', body.upscaler_1], ['upscaler_2', body.upscaler_2]];
  for (const [field, name] of names) {
    if (name === 'None') continue;
    const found = resolve(name, field);
    if ('model' in found && !upscalers.some((u) => u.name === found.model.name)) upscalers.push(found.model);
  }
  const params: PostprocessUpscaleParams = {
    resize_mode: body.resize_mode, upscaling_resize: body.upscaling_resize, upscaling_resize_w: body.upscaling_resize_w,
    upscaling_resize_h: body.upscaling_resize_h, upscaling_crop: body.upscaling_crop, upscaler_1: body.upscaler_1,
    upscaler_2: body.upscaler_2, extras_upscaler_2_visibility: body.extras_upscaler_2_visibility,
  };
  return { params, upscalers };
}

/**
 * The images checked (headers only) and their results' sizes bounded: an upscale is refused, naming the field,
 * when what it would make exceeds MAX_INPUT_PIXELS, the most the farm lets into or out of a worker.
 */
function checkedImages(ctx: ApiContext, images: ReadonlyArray<{ b64: string; field: string }>, params: PostprocessUpscaleParams): Uint8Array[] {
  const max = ctx.cfg.maxInputPixels;
  return images.map(({ b64, field }) => {
    const bytes = decodeImage(b64, field, max);
    const size = readImageSize(bytes);
    if (size.ok) {
      const out = extrasOutputSize(params, size.width, size.height);
      if (out.width < 1 || out.height < 1 || out.width * out.height > max) {
        const by = params.resize_mode === 1 ? 'upscaling_resize_w' : 'upscaling_resize';
        throw new FarmError(out.width < 1 || out.height < 1 ? 'INVALID_REQUEST' : 'IMAGE_TOO_LARGE', out.width < 1 || out.height < 1 ? 400 : 413,
          `${by}: ${field} (${size.width}x${size.height}) would become ${out.width}x${out.height}, ${out.width < 1 || out.height < 1 ? 'an empty image' : `more than MAX_INPUT_PIXELS (${max})`}`, by);
      }
    }
    return bytes;
  });
}

/** Waits for the job to finish (polling it): its result, or its failure as the error the call answers with; `aborted` when the caller went away first. */
async function waitForExtras(ctx: ApiContext, id: string, signal: AbortSignal): Promise<GenerateJobResult | 'aborted'> {
  const deadline = Date.now() + ctx.cfg.syncTimeoutMs;
  let lastLiveCheck = Date.now();
  while (!signal.aborted) {
    const outcome = await readJobOutcome<ExtrasJobData, GenerateJobResult>(ctx.queues.generate, id);
    if (outcome.state === 'gone') throw new FarmError('NOT_FOUND', 404, `extras job ${id} is gone`);
    if (outcome.state === 'failed') {
      const { code, message } = splitFailedReason(outcome.job.failedReason);
      throw failedJobError(code, message);
    }
    if (outcome.state === 'completed') {
      if (!outcome.job.returnvalue) throw new FarmError('INTERNAL', 500, `extras job ${id} completed without a result`);
      return outcome.job.returnvalue;
    }
    if (Date.now() > deadline) throw new FarmError('TIMEOUT', 504, `extras job ${id} did not finish within SYNC_TIMEOUT_MS`);
    if (Date.now() - lastLiveCheck > 2000) {
      lastLiveCheck = Date.now();
      if ((await liveOn(ctx, QUEUE_NAMES.generate)).length === 0) throw noWorkerError();
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return 'aborted';
}

/**
 * A1111's Extras tab over the API: the images upscaled on a worker (an extras job on the `generate` queue), the
 * call answering as A1111's does with the PNGs and `html_info`. A1111 saves nothing for these calls: the farm
 * removes the job's inputs and outputs once it has answered.
 */
async function runExtras(ctx: ApiContext, req: Request, res: Response, body: ExtrasBase, images: ReadonlyArray<{ b64: string; field: string }>): Promise<{ pngs: string[]; html: string } | null> {
  const tenant = tenantOf(res);
  const { params, upscalers } = await checkedParams(ctx, tenant, body);
  const bytes = checkedImages(ctx, images, params);
  // No images, nothing to run: A1111 answers with none and an empty info
  if (bytes.length === 0) return { pngs: [], html: plaintextToHtml('') };
  if ((await liveOn(ctx, QUEUE_NAMES.generate)).length === 0) throw noWorkerError();
  const id = newJobId();
  const inputKeys: string[] = [];
  for (const [i, b] of bytes.entries()) {
    const key = inputKey(tenant, id, `extras-${i}`);
    await ctx.storage.put(key, b);
    inputKeys.push(key);
  }
  const data: ExtrasJobData = {
    tenant, kind: EXTRAS_JOB_NAME, params, inputKeys, upscalers, webhook: null, requestHash: sha256Hex(JSON.stringify(req.body ?? null)), source: 'sdapi', submittedAt: Date.now(),
  };
  // The queue is typed for renders; workers tell this job apart by its name (farm/extras-jobs.ts).
  await ctx.queues.generate.add(EXTRAS_JOB_NAME, data as unknown as GenerateJobData, { jobId: id, priority: await fairPriority(ctx.redis, ctx.keys, tenant) });
  const aborted = new AbortController();
  res.on('close', () => {
    if (!res.writableEnded) aborted.abort();
  });
  try {
    const result = await waitForExtras(ctx, id, aborted.signal);
    if (result === 'aborted') return null;
    const pngs: string[] = [];
    for (const o of result.outputs) {
      const png = await ctx.storage.get(o.key);
      if (png) pngs.push(Buffer.from(png).toString('base64'));
    }
    // run_postprocessing's html_info is the infotext of the last image it processed
    return { pngs, html: plaintextToHtml(result.outputs.at(-1)?.infotext ?? '') };
  } finally {
    if (!(await removeFilesIfDone(ctx, id, inputKeys))) removeFilesWhenDone(ctx, id, inputKeys);
  }
}

/** Deletes an extras job's inputs and outputs once it has finished; false while it has not. */
async function removeFilesIfDone(ctx: ApiContext, id: string, inputKeys: readonly string[]): Promise<boolean> {
  const outcome = await readJobOutcome<ExtrasJobData, GenerateJobResult>(ctx.queues.generate, id);
  let state = outcome.state;
  // Nobody waits for a job not yet started any more: it is taken off the queue (a worker taking it first wins).
  if (state === 'waiting' || state === 'prioritized' || state === 'delayed') {
    const job = await Job.fromId<ExtrasJobData, GenerateJobResult>(ctx.queues.generate, id);
    if (!job) state = 'gone';
    else if (await job.remove().then(() => true, () => false)) {
      await leftWaiting(ctx.redis, ctx.keys, job.data.tenant);
      state = 'gone';
    }
  }
  if (state !== 'completed' && state !== 'failed' && state !== 'gone') return false;
  const outputs = outcome.state === 'completed' ? outcome.job.returnvalue?.outputs ?? [] : [];
  for (const key of [...inputKeys, ...outputs.map((o) => o.key)]) await ctx.storage.delete(key).catch(() => undefined);
  return true;
}

/**
 * A call that went away (or timed out) leaves its job running: its files are removed when it ends, looked at every
 * few seconds for as long again as a call may wait. An API restarted meanwhile leaves them to storage retention.
 */
function removeFilesWhenDone(ctx: ApiContext, id: string, inputKeys: readonly string[]): void {
  const deadline = Date.now() + ctx.cfg.syncTimeoutMs;
  const timer = setInterval(() => {
    void removeFilesIfDone(ctx, id, inputKeys).then((done) => {
      if (done || Date.now() > deadline) clearInterval(timer);
    }, () => undefined);
  }, 5000);
  timer.unref();
}

export function sdapiExtrasRoutes(ctx: ApiContext): Router {
  const r = Router();
  r.post('/sdapi/v1/extra-single-image', async (req, res) => {
    const body = parseSdapi(ExtrasSingleImageRequest, req.body);
    // A1111's run_extras asserts an image was given
    if (body.image === '') throw new FarmError('INVALID_REQUEST', 400, 'image: image not selected', 'image');
    const out = await runExtras(ctx, req, res, body, [{ b64: body.image, field: 'image' }]);
    if (out) res.json({ html_info: out.html, image: out.pngs[0] ?? null });
  });
  r.post('/sdapi/v1/extra-batch-images', async (req, res) => {
    const body = parseSdapi(ExtrasBatchImagesRequest, req.body);
    const out = await runExtras(ctx, req, res, { ...body, image: '' }, body.imageList.map((f, i) => ({ b64: f.data, field: `imageList.${i}.data` })));
    if (out) res.json({ html_info: out.html, images: out.pngs });
  });
  return r;
}
