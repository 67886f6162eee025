import { Router, type Request, type Response } from 'express';
import { FarmError, isJobId, trainingFileKey, trainingImageKey, TrainingResumeRequest } from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { sendStream } from '../send-stream.js';
import { parseWith } from '../http-errors.js';
import { jsonBody } from '../json-body.js';
import { sendCancelOutcome, streamJobEvents } from '../job-actions.js';
import { cancelTraining } from '../training-cancel.js';
import { loadTraining, resumeTraining, submitTrainingBody } from '../training-submit.js';
import { trainingView } from '../training-view.js';

function idParam(req: Request): string {
  const id = String(req.params.id);
  if (!isJobId(id)) throw new FarmError('TRAINING_NOT_FOUND', 404, `no training ${id}`);
  return id;
}

/** A file name from a URL: what the trainer writes (letters, digits, `_.-`), never a path. */
function fileParam(req: Request): string {
  const name = String(req.params.file);
  if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,250}$/.test(name)) throw new FarmError('FILE_NOT_FOUND', 404, `no file ${name}`);
  return name;
}

/** `/v1/trainings`: textual-inversion and hypernetwork training jobs, their state, events, files and previews. */
export function trainingRoutes(ctx: ApiContext): Router {
  const r = Router();

  const accepted = (res: Response, id: string, state: string) => {
    res.status(202).location(`/v1/trainings/${id}`).json({
      id, state, url: `${ctx.cfg.publicUrl}/v1/trainings/${id}`, events_url: `${ctx.cfg.publicUrl}/v1/trainings/${id}/events`,
    });
  };

  r.post('/v1/trainings', async (req, res) => {
    const body = jsonBody(req);
    const { id, replayed } = await submitTrainingBody(ctx, tenantOf(res), body, body, req.get('idempotency-key'));
    if (replayed) res.set('Idempotent-Replayed', 'true');
    // As for jobs: a new training is answered without another Redis read that could turn its 202 into a 503.
    accepted(res, id, replayed ? ((await trainingView(ctx, tenantOf(res), id))?.state ?? 'queued') : 'queued');
  });

  r.get('/v1/trainings/:id', async (req, res) => {
    const id = idParam(req);
    const view = await trainingView(ctx, tenantOf(res), id);
    if (!view) throw new FarmError('TRAINING_NOT_FOUND', 404, `no training ${id}`);
    res.json(view);
  });

  r.post('/v1/trainings/:id/cancel', async (req, res) => {
    sendCancelOutcome(res, await cancelTraining(ctx, tenantOf(res), idParam(req)));
  });

  r.post('/v1/trainings/:id/resume', async (req, res) => {
    const body = parseWith(TrainingResumeRequest, jsonBody(req));
    const { id } = await resumeTraining(ctx, tenantOf(res), idParam(req), body);
    accepted(res, id, 'queued');
  });

  r.get('/v1/trainings/:id/events', async (req, res) => {
    const id = idParam(req);
    if (!(await trainingView(ctx, tenantOf(res), id))) throw new FarmError('TRAINING_NOT_FOUND', 404, `no training ${id}`);
    await streamJobEvents(ctx, req, res, tenantOf(res), id);
  });

  // Folder storage hands files out here; S3 hands out presigned URLs.
  for (const area of ['files', 'images'] as const) {
    r.get(`/v1/trainings/:id/${area}/:file`, async (req, res) => {
      const id = idParam(req);
      const tenant = tenantOf(res);
      const name = fileParam(req);
      if (!(await loadTraining(ctx, tenant, id))) throw new FarmError('TRAINING_NOT_FOUND', 404, `no training ${id}`);
      const key = area === 'files' ? trainingFileKey(tenant, id, name) : trainingImageKey(tenant, id, name);
      const stream = await ctx.storage.getStream(key);
      if (!stream) throw new FarmError('FILE_NOT_FOUND', 404, `training ${id} has no ${area === 'files' ? 'file' : 'preview'} ${name}`);
      res.type(name.endsWith('.png') ? 'image/png' : name.endsWith('.csv') ? 'text/csv' : 'application/octet-stream');
      await sendStream(stream, res);
    });
  }

  return r;
}
