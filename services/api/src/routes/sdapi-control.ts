import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { errorBody, requestStop } from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { jobView } from '../job-view.js';
import { parseSdapi, unsupported } from '../sdapi-errors.js';

/** A1111's InterrogateRequest: checked as A1111 checks it before the refusal, so a malformed call hears that first. */
const InterrogateRequest = z.object({ image: z.string().default(''), model: z.string().default('clip') });

/** Why a call that changes a single process's state does nothing here, sent with the call's A1111 answer. */
const NO_OP_HEADER = 'X-Darkroom-No-Op';

/**
 * A1111's calls about its one process's state: rescans, model (un)loading, skip and the server commands. On a
 * farm some mean nothing (workers load a job's checkpoint themselves), and those answer as A1111 does and say
 * why in a header; what would act on the whole fleet is not a tenant's to call.
 */
export function sdapiControlRoutes(ctx: ApiContext): Router {
  const r = Router();

  // Checkpoints, uploads and MODELS_DIR are read afresh by every listing and every job, so a rescan has nothing
  // left to do by the time it is asked for; A1111 answers these with null.
  const rescan: RequestHandler = (_req, res) => {
    res.set(NO_OP_HEADER, 'listings read MODELS_DIR and the tenant\'s uploads on every call').json(null);
  };
  r.post('/sdapi/v1/refresh-checkpoints', rescan);
  r.post('/sdapi/v1/refresh-embeddings', rescan);
  r.post('/sdapi/v1/refresh-vae', rescan);

  // Workers keep checkpoints in their own caches and load the one each job names; nothing is held for a tenant.
  const modelNoOp: RequestHandler = (_req, res) => {
    res.set(NO_OP_HEADER, 'workers load the checkpoint each job names and evict it by MODEL_CACHE_BYTES').json({});
  };
  r.post('/sdapi/v1/unload-checkpoint', modelNoOp);
  r.post('/sdapi/v1/reload-checkpoint', modelNoOp);

  /**
   * A1111's skip: the running job's current batch iteration stops sampling, keeps the image it reached, and the job
   * goes on with the next iteration. Like A1111's flag it reaches only a job in progress; with none it does nothing.
   */
  r.post('/sdapi/v1/skip', async (_req, res) => {
    const tenant = tenantOf(res);
    const id = await ctx.redis.get(ctx.keys.sdapiCurrent(tenant));
    const view = id ? await jobView(ctx, tenant, id) : null;
    if (view && view.state === 'running') await requestStop(ctx.redis, ctx.keys, view.id, 'skip');
    res.json(null);
  });

  // A1111 registers these only with --api-server-stop; without it they are FastAPI's 404. Tenants never get them.
  for (const cmd of ['server-kill', 'server-restart', 'server-stop']) {
    r.post(`/sdapi/v1/${cmd}`, (_req, res) => {
      res.status(404).json({
        detail: 'Not Found',
        ...errorBody('NOT_FOUND', `${cmd} is not available: A1111 serves it only with --api-server-stop, and a farm's processes are not a tenant's to stop`),
      });
    });
  }

  r.post('/sdapi/v1/interrogate', (req, _res) => {
    const body = parseSdapi(InterrogateRequest, req.body);
    throw unsupported('model', `interrogation ("${body.model}": CLIP or DeepDanbooru captioning) is not supported by this farm`);
  });

  return r;
}
