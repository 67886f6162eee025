import {
  readTerminalRecord, settledOutcome, splitFailedReason, trainingFileKey, trainingFileUrl, trainingImageKey, type TrainingKind, type TrainingProgress, type TrainingView,
  type TrainingWebhookSpec, type TrainJobResult,
} from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { loadTraining, trainingSaves } from './training-submit.js';

/** What GET answers for a training cancelled before any trainer took it (the job itself is gone). */
export interface TrainingTombstone {
  tenant: string;
  kind: TrainingKind;
  name: string;
  dataset: string;
  model: string | null;
  steps: number;
  created_at: string;
  cancelled_at: string;
  webhook: TrainingWebhookSpec | null;
  requestHash: string;
  resumed_from: string | null;
}

const iso = (ms: number | undefined): string | null => (ms ? new Date(ms).toISOString() : null);

function isProgress(p: unknown): p is TrainingProgress {
  return typeof p === 'object' && p !== null && 'step' in p && 'loss' in p;
}

/** The files a training stored, from the trainer's index in Redis, by area, in name order. */
async function storedFiles(ctx: ApiContext, id: string): Promise<Record<'files' | 'images', { name: string; step: number }[]>> {
  const out: Record<'files' | 'images', { name: string; step: number }[]> = { files: [], images: [] };
  for (const [field, step] of Object.entries(await ctx.redis.hgetall(ctx.keys.trainingFiles(id)))) {
    const slash = field.indexOf('/');
    const area = field.slice(0, slash);
    if (area === 'files' || area === 'images') out[area].push({ name: field.slice(slash + 1), step: Number(step) });
  }
  out.files.sort((a, b) => a.name.localeCompare(b.name));
  out.images.sort((a, b) => a.step - b.step);
  return out;
}

export async function loadTrainingTombstone(ctx: ApiContext, tenant: string, id: string): Promise<TrainingTombstone | null> {
  const raw = await ctx.redis.get(ctx.keys.trainingTombstone(id));
  if (!raw) return null;
  const t = JSON.parse(raw) as TrainingTombstone;
  return t.tenant === tenant ? t : null;
}

export async function trainingView(ctx: ApiContext, tenant: string, id: string): Promise<TrainingView | null> {
  let job = await loadTraining(ctx, tenant, id);
  if (!job) {
    const t = await loadTrainingTombstone(ctx, tenant, id);
    if (!t) return null;
    return {
      id, kind: t.kind, name: t.name, state: 'cancelled', dataset: t.dataset, model: t.model, created_at: t.created_at, started_at: null,
      finished_at: t.cancelled_at, attempts: 0, resumed_from: t.resumed_from, step: null, steps: t.steps, loss: null, learn_rate: null, eta: null,
      progress: null, checkpoints: [], files: [], previews: [], asset: null, error: null, webhook: t.webhook,
    };
  }
  const [bullState, record] = await Promise.all([job.getState(), readTerminalRecord<TrainJobResult>(ctx.redis, ctx.keys, id)]);
  // Finished between reading the data and the state: read again, so a finished state comes with its result.
  if ((bullState === 'completed' || bullState === 'failed') && !job.finishedOn) job = (await loadTraining(ctx, tenant, id)) ?? job;
  // The terminal record is written before BullMQ finishes the training: it settles the state in between.
  const { state, result, failedReason, finishedOn } = settledOutcome(bullState, job as { failedReason?: string; returnvalue: TrainJobResult | null; finishedOn?: number }, record);
  const req = job.data.request;
  const progress = isProgress(job.progress) ? job.progress : null;
  const saves = await trainingSaves(ctx, id);
  const { files, images } = await storedFiles(ctx, id);
  const finished = state === 'completed' || state === 'failed' || state === 'cancelled';
  return {
    id,
    kind: req.kind,
    name: req.name,
    state,
    dataset: req.dataset,
    model: req.model,
    created_at: new Date(job.timestamp).toISOString(),
    started_at: iso(job.processedOn),
    finished_at: finishedOn === null ? null : iso(finishedOn),
    attempts: job.attemptsStarted ?? job.attemptsMade,
    resumed_from: job.data.resume?.from ?? null,
    step: result?.step ?? progress?.step ?? saves.at(-1)?.step ?? job.data.resume?.step ?? null,
    steps: progress?.steps ?? req.steps,
    loss: progress?.loss ?? null,
    learn_rate: progress?.learn_rate ?? null,
    eta: finished ? 0 : (progress?.eta ?? null),
    progress,
    checkpoints: saves.map((s) => ({ step: s.step, reason: s.reason, at: s.at, files: s.files })),
    files: await Promise.all(files.map(async (f) => ({
      name: f.name, url: await trainingFileUrl(ctx.storage, ctx.cfg, id, trainingFileKey(tenant, id, f.name), 'files', f.name),
    }))),
    previews: await Promise.all(images.map(async (f) => ({
      name: f.name, step: f.step, url: await trainingFileUrl(ctx.storage, ctx.cfg, id, trainingImageKey(tenant, id, f.name), 'images', f.name),
    }))),
    asset: result?.asset ?? null,
    error: state === 'failed' ? splitFailedReason(failedReason) : null,
    webhook: req.webhook,
  };
}
