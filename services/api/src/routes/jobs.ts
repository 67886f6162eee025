import { Job } from 'bullmq';
import { Router, type Request } from 'express';
import {
  FarmError, Img2ImgRequest, isJobId, previewKey, tenantWebhookSecret, Txt2ImgRequest, type GenerateKind, type GenerateRequest, type WebhookJobData,
} from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { sendStream } from '../send-stream.js';
import { parseWith } from '../http-errors.js';
import { cancelJob, sendCancelOutcome, streamJobEvents } from '../job-actions.js';
import { jobResult, jobView, loadJob } from '../job-view.js';
import { submitGenerate } from '../submit.js';

function jsonBody(req: Request): unknown {
  if (!req.is('application/json')) throw new FarmError('UNSUPPORTED_MEDIA_TYPE', 415, 'send the request as application/json');
  if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
    throw new FarmError('INVALID_REQUEST', 400, 'the request body must be a JSON object');
  }
  return req.body as unknown;
}

function jobIdParam(req: Request): string {
  const id = String(req.params.id);
  if (!isJobId(id)) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
  return id;
}

/** `/v1`: asynchronous jobs (202 + id), their state, events, outputs and webhook deliveries. */
export function jobRoutes(ctx: ApiContext): Router {
  const r = Router();

  const submit = (kind: GenerateKind) => async (req: Request, res: import('express').Response) => {
    const body = jsonBody(req);
    const parsed: GenerateRequest = kind === 'txt2img' ? parseWith(Txt2ImgRequest, body) : parseWith(Img2ImgRequest, body);
    const key = req.get('idempotency-key');
    const { id, replayed } = await submitGenerate(ctx, tenantOf(res), kind, parsed, body, { idempotencyKey: key, source: 'v1' });
    if (replayed) res.set('Idempotent-Replayed', 'true');
    // A new job is answered without another Redis read: one that failed would answer 503 for a job that is queued,
    // and a retry without an Idempotency-Key would queue it twice. A replay queued nothing, so it reads the state.
    const state = replayed ? ((await jobView(ctx, tenantOf(res), id))?.state ?? 'queued') : 'queued';
    res.status(202).location(`/v1/jobs/${id}`).json({
      id, state, url: `${ctx.cfg.publicUrl}/v1/jobs/${id}`, events_url: `${ctx.cfg.publicUrl}/v1/jobs/${id}/events`,
    });
  };
  r.post('/v1/txt2img', submit('txt2img'));
  r.post('/v1/img2img', submit('img2img'));

  r.get('/v1/jobs/:id', async (req, res) => {
    const id = jobIdParam(req);
    const view = await jobView(ctx, tenantOf(res), id);
    if (!view) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    res.json(view);
  });

  r.delete('/v1/jobs/:id', async (req, res) => {
    sendCancelOutcome(res, await cancelJob(ctx, tenantOf(res), jobIdParam(req)));
  });

  r.get('/v1/jobs/:id/events', async (req, res) => {
    const id = jobIdParam(req);
    if (!(await jobView(ctx, tenantOf(res), id))) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    await streamJobEvents(ctx, req, res, tenantOf(res), id);
  });

  r.get('/v1/jobs/:id/outputs/:file', async (req, res) => {
    const id = jobIdParam(req);
    const job = await loadJob(ctx, tenantOf(res), id);
    if (!job) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    const m = /^(\d{1,4})\.png$/.exec(String(req.params.file));
    const out = m && (await jobResult(ctx, job))?.outputs.find((o) => o.index === Number(m[1]));
    if (!out) throw new FarmError('OUTPUT_NOT_FOUND', 404, `no output ${String(req.params.file)} for job ${id}`);
    const stream = await ctx.storage.getStream(out.key);
    if (!stream) throw new FarmError('OUTPUT_NOT_FOUND', 404, `output ${out.key} is gone from storage`);
    res.type('image/png');
    await sendStream(stream, res);
  });

  r.get('/v1/jobs/:id/preview.png', async (req, res) => {
    const id = jobIdParam(req);
    const job = await loadJob(ctx, tenantOf(res), id);
    if (!job) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    const stream = await ctx.storage.getStream(previewKey(job.data.tenant, id));
    if (!stream) throw new FarmError('PREVIEW_NOT_FOUND', 404, `job ${id} has no preview (PREVIEW_EVERY_N_STEPS)`);
    res.type('image/png').set('cache-control', 'no-store');
    await sendStream(stream, res);
  });

  r.get('/v1/jobs/:id/webhooks', async (req, res) => {
    const id = jobIdParam(req);
    if (!(await jobView(ctx, tenantOf(res), id))) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    const entries = await ctx.redis.lrange(ctx.keys.deliveries(id), 0, -1);
    res.json({ deliveries: entries.map((e) => JSON.parse(e) as unknown) });
  });

  // Sends a past message again (same webhook-id, so receivers that already have it can drop it).
  r.post('/v1/jobs/:id/webhooks/:messageId/redeliver', async (req, res) => {
    const id = jobIdParam(req);
    if (!(await jobView(ctx, tenantOf(res), id))) throw new FarmError('JOB_NOT_FOUND', 404, `no job ${id}`);
    const messageId = String(req.params.messageId);
    const original = /^msg_[A-Za-z0-9_]+$/.test(messageId) ? await Job.fromId<WebhookJobData>(ctx.queues.webhooks, messageId) : undefined;
    if (!original || original.data.jobId !== id || original.data.tenant !== tenantOf(res)) {
      throw new FarmError('MESSAGE_NOT_FOUND', 404, `no webhook message ${messageId} for job ${id}`);
    }
    await ctx.queues.webhooks.add(original.name, original.data, { jobId: `${messageId}_redeliver_${Date.now()}` });
    res.status(202).json({ message_id: messageId, redelivery: 'queued' });
  });

  r.get('/v1/webhook-secret', (_req, res) => {
    res.json({ secret: tenantWebhookSecret(ctx.masterSecret, tenantOf(res)), scheme: 'standard-webhooks v1 (HMAC-SHA256)' });
  });

  return r;
}
