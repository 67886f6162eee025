import { Router, type Request, type Response } from 'express';
import { FarmError, isJobId } from '@darkroom/farm';
import { flowOutputContentType, flowOutputFileName } from '@darkroom/farm/flows.js';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { sendStream } from '../send-stream.js';
import { submitFlow } from '../flow-submit.js';
import { cancelFlow, flowView, loadFlow } from '../flow-view.js';
import { sendCancelOutcome, streamJobEvents } from '../job-actions.js';

function flowIdParam(req: Request): string {
  const id = String(req.params.id);
  if (!isJobId(id)) throw new FarmError('FLOW_NOT_FOUND', 404, `no flow ${id}`);
  return id;
}

/** `/v1/flows`: one parent job fanned out into generation jobs over every worker, composed when the last one ends. */
export function flowRoutes(ctx: ApiContext): Router {
  const r = Router();

  r.post('/v1/flows', async (req: Request, res: Response) => {
    if (!req.is('application/json')) throw new FarmError('UNSUPPORTED_MEDIA_TYPE', 415, 'send the request as application/json');
    if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      throw new FarmError('INVALID_REQUEST', 400, 'the request body must be a JSON object');
    }
    const tenant = tenantOf(res);
    const submitted = await submitFlow(ctx, tenant, req.body, { idempotencyKey: req.get('idempotency-key') });
    const { id } = submitted;
    // A new flow is answered from what was queued: reading it back could fail on a flow that is queued, and a
    // retry without an Idempotency-Key would then queue it twice. A replay made nothing, so it reads the flow.
    let state = 'queued';
    let children: string[];
    if (submitted.replayed) {
      res.set('Idempotent-Replayed', 'true');
      const view = await flowView(ctx, tenant, id);
      state = view?.state ?? state;
      children = view?.children.map((c) => c.id) ?? [];
    } else {
      children = submitted.children;
    }
    res.status(202).location(`/v1/flows/${id}`).json({
      id, state, url: `${ctx.cfg.publicUrl}/v1/flows/${id}`, events_url: `${ctx.cfg.publicUrl}/v1/flows/${id}/events`, children,
    });
  });

  r.get('/v1/flows/:id', async (req, res) => {
    const id = flowIdParam(req);
    const view = await flowView(ctx, tenantOf(res), id);
    if (!view) throw new FarmError('FLOW_NOT_FOUND', 404, `no flow ${id}`);
    res.json(view);
  });

  r.delete('/v1/flows/:id', async (req, res) => {
    sendCancelOutcome(res, await cancelFlow(ctx, tenantOf(res), flowIdParam(req)));
  });

  r.get('/v1/flows/:id/events', async (req, res) => {
    const id = flowIdParam(req);
    if (!(await loadFlow(ctx, tenantOf(res), id))) throw new FarmError('FLOW_NOT_FOUND', 404, `no flow ${id}`);
    await streamJobEvents(ctx, req, res, tenantOf(res), id);
  });

  // Grids and animations on folder storage (S3 presigns them); a child's images are served at its own job.
  r.get('/v1/flows/:id/outputs/:file', async (req, res) => {
    const id = flowIdParam(req);
    const job = await loadFlow(ctx, tenantOf(res), id);
    if (!job) throw new FarmError('FLOW_NOT_FOUND', 404, `no flow ${id}`);
    const file = String(req.params.file);
    const m = /^(\d{1,4})\.(png|webp|gif)$/.exec(file);
    const out = m && job.returnvalue?.outputs.find((o) => o.index === Number(m[1]) && flowOutputFileName(o) === file);
    if (!out) throw new FarmError('OUTPUT_NOT_FOUND', 404, `no output ${file} for flow ${id}`);
    const stream = await ctx.storage.getStream(out.key);
    if (!stream) throw new FarmError('OUTPUT_NOT_FOUND', 404, `output ${out.key} is gone from storage`);
    res.type(flowOutputContentType(out));
    await sendStream(stream, res);
  });

  return r;
}
