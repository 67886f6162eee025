import { randomInt } from 'node:crypto';
import { Job } from 'bullmq';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { createHypernetwork } from '@darkroom/core/networks/hypernetworks/create.js';
import { samplerEntryByAlias, samplerEntryByName } from '@darkroom/core/catalog/samplers.js';
import {
  addWithQueuedEvent, assetKindOf, BUILTIN_MODEL, checkTrainingPlan, checkWebhookUrlSyntax, FarmError, idempotentJobId, isCancelledReason, newJobId,
  readManifest, requeueQueuedWebhook, sha256Hex, TrainingRequest, type AssetPin, type TrainingResumeRequest, type TrainingSaveRecord, type TrainJobData,
} from '@darkroom/farm';
import { eventContext, type ApiContext } from './context.js';
import { parseWith } from './http-errors.js';
import { checkIdempotencyKey, idempotencyKeyReused, madeAlready } from './idempotency.js';
import { findModel, listModels } from './models.js';

/** A seed drawn at acceptance, so every attempt of the training (and a resumed one) draws the same. */
function resolveSeed(seed: number, below: number): number {
  return seed === -1 ? randomInt(0, below) : seed;
}

function refuse(code: string, field: string, message: string): FarmError {
  return new FarmError(code, 400, `${field}: ${message}`, field);
}

/** A hypernetwork's create fields, tried on a one-wide model: a bad layer or dropout structure is a 400 now. */
function checkCreate(req: TrainingRequest): void {
  if (req.kind !== 'hypernetwork' || req.create === null) return;
  const c = req.create;
  try {
    createHypernetwork({
      name: req.name, sizes: [8], layerStructure: c.layer_structure, activationFunc: c.activation_func, weightInit: c.weight_initialization,
      addLayerNorm: c.add_layer_norm, useDropout: c.use_dropout, dropoutStructure: c.dropout_structure, activateOutput: c.activate_output,
      random: { uniform: () => 0.5, normal: () => 0 },
    });
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    throw refuse(e.code, /dropout/i.test(e.message) ? 'create.dropout_structure' : 'create.layer_structure', e.message);
  }
}

async function resolveNames(ctx: ApiContext, tenant: string, req: TrainingRequest): Promise<{ model: string | null; pin: AssetPin | null; images: number }> {
  const manifest = await readManifest(ctx.storage, tenant, req.dataset);
  if (!manifest) throw refuse('UNKNOWN_DATASET', 'dataset', `no dataset ${req.dataset} (POST /v1/datasets uploads one)`);
  const images = manifest.files.filter((f) => f.kind === 'image').length;
  let model: string | null = null;
  if (req.model !== null && req.model !== BUILTIN_MODEL) {
    const m = findModel(await listModels(ctx.registry, ctx.cfg.modelsDir, tenant), req.model);
    if (!m) throw refuse('UNKNOWN_MODEL', 'model', `"${req.model}" is not uploaded, not in MODELS_DIR and not "${BUILTIN_MODEL}"`);
    model = m.source === 'builtin' ? null : m.model_name;
  }
  let pin: AssetPin | null = null;
  if (req.continue_from !== null) {
    if (req.create !== null) throw refuse('CONFLICTING_FIELDS', 'create', 'give create for a new network or continue_from for an existing one, not both');
    const kind = assetKindOf(req.kind);
    const rec = await ctx.registry.get(tenant, kind, req.continue_from);
    if (!rec) throw refuse('UNKNOWN_ASSET', 'continue_from', `no ${req.kind} named "${req.continue_from}" (GET /v1/${kind} lists them)`);
    pin = { name: rec.name, filename: rec.filename, sha256: rec.sha256 };
  }
  return { model, pin, images };
}

function checkPreview(req: TrainingRequest): void {
  if (!samplerEntryByName(req.preview_sampler_name) && !samplerEntryByAlias(req.preview_sampler_name)) {
    throw refuse('UNKNOWN_SAMPLER', 'preview_sampler_name', `no sampler "${req.preview_sampler_name}" (GET /sdapi/v1/samplers lists them)`);
  }
}

function checkWebhook(ctx: ApiContext, webhook: TrainingRequest['webhook']): void {
  if (!webhook) return;
  const problem = checkWebhookUrlSyntax(webhook.url, ctx.cfg.webhookAllowlist);
  if (problem) throw new FarmError('WEBHOOK_URL_REFUSED', 400, `webhook.url: ${problem}`, 'webhook.url');
}

async function enqueue(ctx: ApiContext, id: string, data: TrainJobData): Promise<void> {
  const job = await addWithQueuedEvent(
    eventContext(ctx),
    { id, tenant: data.tenant, webhook: data.request.webhook, family: 'training' },
    { kind: data.request.kind, name: data.request.name, ...(data.resume ? { resumed_from: data.resume.from } : {}) },
    () => ctx.queues.train.add(data.request.kind, data, { jobId: id }),
    (added) => added.data.requestHash === data.requestHash,
  );
  if (job.data.requestHash !== data.requestHash) throw idempotencyKeyReused();
  ctx.log.info({ jobId: id, tenant: data.tenant, kind: data.request.kind, name: data.request.name }, 'training queued');
}

/**
 * The job id for a new training: a fresh ULID, or, with an Idempotency-Key, the key's deterministic id (a
 * retried POST then finds the training it already made instead of making another).
 */
async function trainingId(ctx: ApiContext, tenant: string, key: string | undefined, requestHash: string): Promise<{ id: string; existing: boolean }> {
  if (key === undefined) return { id: newJobId(), existing: false };
  checkIdempotencyKey(key);
  const id = idempotentJobId(tenant, key);
  const job = await Job.fromId<TrainJobData>(ctx.queues.train, id);
  const existing = await madeAlready(job, () => ctx.redis.get(ctx.keys.trainingTombstone(id)), requestHash);
  // A replay queues the training's `queued` webhook again, in case the first request's queueing of it failed.
  if (job) await requeueQueuedWebhook(eventContext(ctx), { id, tenant, webhook: job.data.request.webhook, family: 'training' });
  return { id, existing };
}

/** Validates a training against the dataset and the engine's rules, and queues it once. */
export async function submitTraining(
  ctx: ApiContext, tenant: string, parsed: TrainingRequest, rawBody: unknown, idempotencyKey?: string,
): Promise<{ id: string; replayed: boolean }> {
  const requestHash = sha256Hex(JSON.stringify(rawBody ?? null));
  const { id, existing } = await trainingId(ctx, tenant, idempotencyKey, requestHash);
  if (existing) return { id, replayed: true };
  checkWebhook(ctx, parsed.webhook);
  checkPreview(parsed);
  checkCreate(parsed);
  const { model, pin, images } = await resolveNames(ctx, tenant, parsed);
  const request: TrainingRequest = {
    ...parsed, model, seed: resolveSeed(parsed.seed, 2 ** 32), preview_seed: resolveSeed(parsed.preview_seed, 4294967294),
  };
  // A continued asset's own step is the trainer's to read (the API does not parse uploads): checked from 0 here.
  checkTrainingPlan(request, images, 0);
  await enqueue(ctx, id, {
    tenant, request, continueFrom: pin, resume: null, datasetImages: images, requestHash, submittedAt: Date.now(),
  });
  return { id, replayed: false };
}

/**
 * A `/v1/trainings` body, checked against the schema and submitted: POST /v1/trainings sends its own body, the
 * `/sdapi/v1/train/*` calls the body they map A1111's arguments to (with A1111's body as `rawBody`, which keys
 * idempotency).
 */
export async function submitTrainingBody(
  ctx: ApiContext, tenant: string, body: unknown, rawBody: unknown, idempotencyKey?: string,
): Promise<{ id: string; replayed: boolean }> {
  return submitTraining(ctx, tenant, parseWith(TrainingRequest, body), rawBody, idempotencyKey);
}

export async function loadTraining(ctx: ApiContext, tenant: string, id: string): Promise<Job<TrainJobData> | null> {
  const job = await Job.fromId<TrainJobData>(ctx.queues.train, id);
  // Another tenant's training answers exactly like a missing one.
  return job && job.data.tenant === tenant ? job : null;
}

/** The checkpoints a training stored, oldest first; a step saved twice (a retried save) counts once. */
export async function trainingSaves(ctx: ApiContext, id: string): Promise<TrainingSaveRecord[]> {
  const raw = await ctx.redis.lrange(ctx.keys.trainingSaves(id), 0, -1);
  const bySave = new Map<string, TrainingSaveRecord>();
  for (const r of raw) {
    const rec = JSON.parse(r) as TrainingSaveRecord;
    bySave.set(`${rec.step}:${rec.reason}`, rec);
  }
  return [...bySave.values()].sort((a, b) => a.step - b.step || a.at.localeCompare(b.at));
}

/**
 * A new training that continues a completed or cancelled one from its stored checkpoint with more steps:
 * A1111's way of training an existing file further (the step count goes on and the learn-rate schedule is read
 * again from that step), with the optimizer state the checkpoint holds.
 */
export async function resumeTraining(ctx: ApiContext, tenant: string, parentId: string, body: TrainingResumeRequest): Promise<{ id: string }> {
  const parent = await loadTraining(ctx, tenant, parentId);
  if (!parent) throw new FarmError('TRAINING_NOT_FOUND', 404, `no training ${parentId}`);
  const state = await parent.getState();
  const resumable = state === 'completed' || (state === 'failed' && isCancelledReason(parent.failedReason));
  if (!resumable) {
    throw new FarmError('TRAINING_NOT_RESUMABLE', 409, `training ${parentId} is ${state === 'failed' ? 'failed' : state}; only completed or cancelled trainings continue`);
  }
  const last = (await trainingSaves(ctx, parentId)).at(-1);
  if (!last) throw new FarmError('CHECKPOINT_MISSING', 409, `training ${parentId} stored no checkpoint to continue from`);
  const old = parent.data.request;
  if (!(await readManifest(ctx.storage, tenant, old.dataset))) {
    throw new FarmError('UNKNOWN_DATASET', 409, `dataset ${old.dataset}, which training ${parentId} trained on, is gone`);
  }
  const request: TrainingRequest = {
    ...old, steps: body.steps, learn_rate: body.learn_rate ?? old.learn_rate, webhook: body.webhook === undefined ? old.webhook : body.webhook,
  };
  checkWebhook(ctx, request.webhook);
  if (body.steps <= last.step) throw refuse('TRAINING_NOTHING_TO_DO', 'steps', `the stored checkpoint is at step ${last.step}: ask for more steps than that`);
  checkTrainingPlan(request, parent.data.datasetImages, last.step);
  const id = newJobId();
  await enqueue(ctx, id, {
    tenant, request, continueFrom: parent.data.continueFrom, resume: { from: parentId, step: last.step }, datasetImages: parent.data.datasetImages,
    requestHash: sha256Hex(JSON.stringify({ resume: parentId, body })), submittedAt: Date.now(),
  });
  return { id };
}
