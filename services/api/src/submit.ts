import { applyNamedStyles, StyleStore } from '@darkroom/farm/styles.js';
import { randomInt } from 'node:crypto';
import { Job } from 'bullmq';
import {
  addWithQueuedEvent, BUILTIN_MODEL, checkEngineParams, checkWebhookUrlSyntax, fairPriority, FarmError, idempotentJobId, inputImageProblem, inputKey, memoryRefusal, newJobId,
  QUEUE_NAMES, requeueQueuedWebhook, sha256Hex, type GenerateJobData, type GenerateKind, type GenerateRequest,
} from '@darkroom/farm';
import { resolveSamplerEntry, samplerEntryByAlias } from '@darkroom/core/catalog/samplers.js';
import { findSchedulerEntry, SCHEDULER_CATALOG } from '@darkroom/core/catalog/schedulers.js';
import { hypernetworkMultiplierError, promptHypernetworks } from '@darkroom/core/pipeline/extra-networks.js';
import { DEFAULT_SETTINGS, resolveSettings, type OverrideSettings } from '@darkroom/core/pipeline/params.js';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { eventContext, type ApiContext } from './context.js';
import { admissionBudgets, liveOn, noWorkerError } from './fleet.js';
import { findModel, listModels } from './models.js';
import { embeddingsInPrompts, jobBatchKey } from '@darkroom/farm/job-batch-key.js';
import { resolveHiresUpscaler } from './upscaler-setting.js';
import { resolveJobVae } from './vae-setting.js';
import { checkIdempotencyKey, claimIdempotentId, CLAIM_TIMING, idempotencyKeyBusy, idempotencyKeyReused, madeAlready } from './idempotency.js';

export interface Submitted {
  id: string;
  /** True when an Idempotency-Key matched an existing job and nothing new was queued. */
  replayed: boolean;
}

/** A1111's random seed: randrange(4294967294). Resolved at submission so a retried job redraws the same images. */
function resolveSeed(seed: number): number {
  return seed === -1 ? randomInt(0, 4294967294) : seed;
}

/**
 * A1111's base64 image field (optionally a data: URI) to bytes, refused now when the worker could not decode it:
 * a damaged header, a format no decoder reads, or more declared pixels than MAX_INPUT_PIXELS (read from the
 * header, so a small file claiming a huge size costs nothing).
 */
export function decodeImage(b64: string, field: string, maxPixels: number): Uint8Array {
  const bytes = new Uint8Array(Buffer.from(b64.replace(/^data:image\/[a-z+.-]+;base64,/, ''), 'base64'));
  const problem = inputImageProblem(bytes, maxPixels);
  if (problem) throw new FarmError(problem.code, problem.code === 'IMAGE_TOO_LARGE' ? 413 : 400, `${field}: ${problem.message}`, field);
  return bytes;
}

/**
 * `/v1` refuses sampler and scheduler names it cannot run (A1111 1.10 silently falls back to DPM++ 2M, which
 * `/sdapi/v1` keeps for compatibility). Aliases such as `k_euler_a` are rewritten to the display name.
 */
function checkSampler(req: GenerateRequest): void {
  const name = req.sampler_name ?? req.sampler_index;
  const field = req.sampler_name !== null ? 'sampler_name' : 'sampler_index';
  const resolved = resolveSamplerEntry(name, req.scheduler, false);
  const recognised = name === resolved.sampler.name
    || SCHEDULER_CATALOG.some((x) => [x.label, x.name, ...x.aliases].some((o) => name === `${resolved.sampler.name} ${o}`));
  if (!recognised) {
    const alias = samplerEntryByAlias(name);
    if (!alias) throw new FarmError('UNKNOWN_SAMPLER', 400, `${field}: no sampler "${name}" (GET /sdapi/v1/samplers lists them)`, field);
    req.sampler_name = alias.name;
  }
  if (req.scheduler !== null && !findSchedulerEntry(req.scheduler)) {
    throw new FarmError('UNKNOWN_SCHEDULER', 400, `scheduler: no scheduler "${req.scheduler}" (GET /sdapi/v1/schedulers lists them)`, 'scheduler');
  }
}

const ENGINE_SETTINGS = new Set(Object.keys(DEFAULT_SETTINGS));

/**
 * Settings the engine does not know: `/v1` refuses them by name; `/sdapi/v1` drops them, as A1111 ignores
 * settings that do not affect generation (sd_vae, samples_format, ...).
 */
function checkOverrides(req: GenerateRequest, source: 'v1' | 'sdapi'): void {
  if (!req.override_settings) req.override_settings = null;
  for (const k of Object.keys(req.override_settings ?? {})) {
    // sd_vae is resolved against the tenant's VAE uploads at submission (vae-setting.ts)
    if (ENGINE_SETTINGS.has(k) || k === 'sd_vae') continue;
    if (source === 'v1') throw new FarmError('UNKNOWN_SETTING', 400, `override_settings.${k} is not a setting Darkroom applies`, `override_settings.${k}`);
    delete req.override_settings![k];
  }
  // The engine's own validation of the values, run here so a bad value is a 400 now rather than a failed job.
  try {
    resolveSettings((req.override_settings ?? undefined) as OverrideSettings | undefined, req.clip_skip ?? undefined);
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    const field = typeof e.details.field === 'string' ? e.details.field : 'override_settings';
    throw new FarmError('INVALID_REQUEST', 400, e.message, field);
  }
}

/**
 * The tenant's saved styles named in `styles`, applied to the prompts as A1111's processing applies them; the
 * job carries the styled prompts (what the infotext shows) and the names (what `info.styles` echoes).
 */
async function applyStyles(ctx: ApiContext, tenant: string, req: GenerateRequest): Promise<void> {
  const names = req.styles ?? [];
  if (names.length === 0) return;
  const styled = applyNamedStyles(await new StyleStore(ctx.redis, ctx.keys).list(tenant), names, {
    prompt: req.prompt, negative_prompt: req.negative_prompt,
    ...('hr_prompt' in req ? { hr_prompt: req.hr_prompt, hr_negative_prompt: req.hr_negative_prompt } : {}),
  });
  Object.assign(req, styled);
}

/** A1111 features `/v1` accepts by name but cannot honour are refused rather than silently ignored. */
function checkSupported(req: GenerateRequest): void {
  const unsupported: [string, boolean][] = [
    ['restore_faces', req.restore_faces === true],
    ['script_name', req.script_name !== null],
    ['alwayson_scripts', Object.keys(req.alwayson_scripts).length > 0],
    ['refiner_checkpoint', req.refiner_checkpoint !== null],
    ['infotext', req.infotext !== null],
  ];
  for (const [field, used] of unsupported) {
    if (used) throw new FarmError('UNSUPPORTED', 400, `${field} is not supported by this farm`, field);
  }
}

/** Checks every name the job uses; returns the size of the checkpoint file it names (null: the built-in model). */
async function checkNames(ctx: ApiContext, tenant: string, req: GenerateRequest): Promise<number | null> {
  let checkpointBytes: number | null = null;
  if (req.model !== null && req.model !== BUILTIN_MODEL) {
    const m = findModel(await listModels(ctx.registry, ctx.cfg.modelsDir, tenant), req.model);
    if (!m) throw new FarmError('UNKNOWN_MODEL', 400, `model "${req.model}" is not uploaded, not in MODELS_DIR and not "${BUILTIN_MODEL}"`, 'model');
    req.model = m.source === 'builtin' ? null : m.model_name;
    checkpointBytes = m.size;
  }
  for (const [i, n] of (req.embeddings ?? []).entries()) {
    if (!(await ctx.registry.get(tenant, 'embeddings', n))) throw new FarmError('UNKNOWN_EMBEDDING', 400, `embedding "${n}" is not uploaded`, `embeddings.${i}`);
  }
  for (const [i, n] of req.hypernetworks.entries()) {
    if (!(await ctx.registry.get(tenant, 'hypernetworks', n))) throw new FarmError('UNKNOWN_HYPERNETWORK', 400, `hypernetwork "${n}" is not uploaded`, `hypernetworks.${i}`);
  }
  if (!req.disable_extra_networks) {
    // In the pipeline's order and with its reading of each tag, so a prompt the pipeline would refuse is refused here.
    for (const use of promptHypernetworks(req.prompt)) {
      if (!(await ctx.registry.get(tenant, 'hypernetworks', use.name))) {
        throw new FarmError('UNKNOWN_HYPERNETWORK', 400, `the prompt uses hypernetwork "${use.name}", which is not uploaded`, 'prompt');
      }
      const bad = hypernetworkMultiplierError(use);
      if (bad) throw new FarmError(bad.code, 400, bad.message, 'prompt');
    }
  }
  if (req.webhook) {
    const problem = checkWebhookUrlSyntax(req.webhook.url, ctx.cfg.webhookAllowlist);
    if (problem) throw new FarmError('WEBHOOK_URL_REFUSED', 400, `webhook.url: ${problem}`, 'webhook.url');
  }
  return checkpointBytes;
}

/** Validates names, stores img2img inputs, and queues the job once (per Idempotency-Key). */
export async function submitGenerate(
  ctx: ApiContext,
  tenant: string,
  kind: GenerateKind,
  request: GenerateRequest,
  rawBody: unknown,
  opts: { idempotencyKey?: string; source: 'v1' | 'sdapi' },
): Promise<Submitted> {
  const requestHash = sha256Hex(JSON.stringify(rawBody ?? null));
  if (opts.idempotencyKey === undefined) return createJob(ctx, tenant, kind, request, newJobId(), requestHash, opts.source);
  checkIdempotencyKey(opts.idempotencyKey);
  const id = idempotentJobId(tenant, opts.idempotencyKey);
  // A replay queues the job's `queued` webhook again, in case the first request's queueing of it failed.
  const replay = async (job: Job<GenerateJobData> | undefined): Promise<Submitted> => {
    if (job) await requeueQueuedWebhook(eventContext(ctx), { id, tenant, webhook: job.data.webhook });
    return { id, replayed: true };
  };
  const existing = await Job.fromId<GenerateJobData>(ctx.queues.generate, id);
  if (await madeAlready(existing, () => ctx.redis.get(ctx.keys.tombstone(id)), requestHash)) return replay(existing);
  // Concurrent retries: one request claims the id and creates the job; the others wait for it and replay it.
  const claim = await claimIdempotentId(ctx.redis, ctx.keys.idempotencyClaim(id));
  if (claim === null) {
    const deadline = Date.now() + 2 * CLAIM_TIMING.leaseMs;
    while (Date.now() < deadline) {
      const job = await Job.fromId<GenerateJobData>(ctx.queues.generate, id);
      if (job) {
        if (job.data.requestHash !== requestHash) throw idempotencyKeyReused();
        return replay(job);
      }
      // The claimer gave up (its request was refused, or Redis or its process died under it): try in its place.
      if (!(await ctx.redis.exists(ctx.keys.idempotencyClaim(id)))) return submitGenerate(ctx, tenant, kind, request, rawBody, opts);
      await new Promise((r) => setTimeout(r, 25));
    }
    throw idempotencyKeyBusy();
  }
  try {
    // Checked again under the claim: a request that found no job before another request made it and let its
    // claim go must replay that job, not make it again (a second `queued` event and webhook).
    const made = await Job.fromId<GenerateJobData>(ctx.queues.generate, id);
    if (await madeAlready(made, () => ctx.redis.get(ctx.keys.tombstone(id)), requestHash)) return replay(made);
    return await createJob(ctx, tenant, kind, request, id, requestHash, opts.source);
  } finally {
    // Made or refused, the claim has done its work: a retry now finds the job, or may try again (corrected).
    await claim.release();
  }
}

/**
 * Everything a generation job goes through before it is queued: its images checked and stored under `id`, its
 * names, settings and styles resolved, its admission checked and its seeds drawn. Flows prepare each child with it.
 */
export async function prepareGenerateJob(
  ctx: ApiContext, tenant: string, kind: GenerateKind, request: GenerateRequest, id: string, requestHash: string, source: 'v1' | 'sdapi',
): Promise<GenerateJobData> {
  // Images first: checking their headers costs microseconds, whatever they claim to hold.
  const max = ctx.cfg.maxInputPixels;
  const images = 'init_images' in request ? request.init_images.map((b64, i) => decodeImage(b64, `init_images.${i}`, max)) : [];
  const mask = 'init_images' in request && request.mask !== null ? decodeImage(request.mask, 'mask', max) : null;
  if ('init_images' in request && request.latent_mask !== null) {
    // checked here, carried in the request (a mask for the latent blend is rare and small)
    if (mask === null) throw new FarmError('INVALID_REQUEST', 400, 'latent_mask: needs a mask', 'latent_mask');
    decodeImage(request.latent_mask, 'latent_mask', max);
  }
  if (source === 'v1') {
    checkSampler(request);
    checkSupported(request);
  }
  checkOverrides(request, source);
  await applyStyles(ctx, tenant, request);
  checkEngineParams(kind, request as unknown as Record<string, unknown>);
  const checkpointBytes = await checkNames(ctx, tenant, request);
  const vae = await resolveJobVae(ctx.registry, ctx.cfg.modelsDir, tenant, request);
  const hiresUpscaler = await resolveHiresUpscaler(ctx.registry, ctx.cfg.modelsDir, tenant, request);
  // Admission by need: refused now, naming the field, when no worker's memory budget can hold the job. A
  // synchronous /sdapi call with no worker alive is refused too, rather than left waiting for one.
  const live = await liveOn(ctx, QUEUE_NAMES.generate);
  if (source === 'sdapi' && live.length === 0) throw noWorkerError();
  const refusal = memoryRefusal({ kind, request, checkpointBytes }, admissionBudgets(ctx, live));
  if (refusal) throw refusal;
  const resolved: GenerateRequest = { ...request, seed: resolveSeed(request.seed), subseed: resolveSeed(request.subseed) };
  const inputKeys: GenerateJobData['inputKeys'] = { initImages: [], mask: null };
  if ('init_images' in resolved) {
    for (const [i, img] of images.entries()) {
      const key = inputKey(tenant, id, `init-${i}`);
      await ctx.storage.put(key, img);
      inputKeys.initImages.push(key);
    }
    if (mask) {
      inputKeys.mask = inputKey(tenant, id, 'mask');
      await ctx.storage.put(inputKeys.mask, mask);
    }
    // The bytes live in storage; Redis keeps only their keys.
    resolved.init_images = [];
    resolved.mask = null;
  }
  // Which waiting jobs a worker may render with this one in a UNet batch (BATCH_MAX); img2img renders alone.
  const batchKey = kind !== 'txt2img' ? null : jobBatchKey({
    tenant, kind, request: resolved, vae, upscalers: hiresUpscaler ? [hiresUpscaler] : [],
    embeddings: resolved.embeddings ?? embeddingsInPrompts((await ctx.registry.list(tenant, 'embeddings')).map((r) => r.name), resolved),
  });
  const data: GenerateJobData = {
    tenant, kind, request: resolved, inputKeys, webhook: resolved.webhook, requestHash, source, submittedAt: Date.now(), checkpointBytes,
    ...(vae ? { vae } : {}),
    ...(hiresUpscaler ? { upscalers: [hiresUpscaler] } : {}),
    ...(batchKey !== null ? { batchKey } : {}),
  };
  return data;
}

async function createJob(
  ctx: ApiContext, tenant: string, kind: GenerateKind, request: GenerateRequest, id: string, requestHash: string, source: 'v1' | 'sdapi',
): Promise<Submitted> {
  const data = await prepareGenerateJob(ctx, tenant, kind, request, id, requestHash, source);
  const priority = await fairPriority(ctx.redis, ctx.keys, tenant);
  const job = await addWithQueuedEvent(
    eventContext(ctx),
    { id, tenant, webhook: data.webhook }, { kind },
    () => ctx.queues.generate.add(kind, data, { jobId: id, priority }),
    (added) => added.data.requestHash === requestHash,
  );
  if (job.data.requestHash !== requestHash) {
    // Lost a race with an identical key carrying another body.
    throw idempotencyKeyReused();
  }
  ctx.metrics.submitted.inc({ kind, source });
  ctx.log.info({ jobId: id, tenant, kind, source }, 'job queued');
  return { id, replayed: false };
}
