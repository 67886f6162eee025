import { Router, type Request, type Response } from 'express';
import {
  SdapiCreateEmbedding, SdapiCreateHypernetwork, trainedInfo, trainErrorInfo, trainingOutcomeInfo, type TrainingKind,
} from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { parseWith } from '../http-errors.js';
import { waitForTerminal } from '../job-actions.js';
import { jsonBody } from '../json-body.js';
import { createEmbeddingFile, createHypernetworkFile } from '../network-create.js';
import { submitSdapiTraining } from '../sdapi-train.js';
import { trainingView } from '../training-view.js';

/**
 * A1111's training calls on `/sdapi/v1`: create an embedding or hypernetwork, and train one. A training is an
 * ordinary farm training (POST /v1/trainings); the call waits for it as A1111's call blocks until its training
 * ends, and a client that goes away leaves it running.
 */
export function sdapiTrainingRoutes(ctx: ApiContext): Router {
  const r = Router();

  r.post('/sdapi/v1/create/embedding', async (req, res) => {
    const body = parseWith(SdapiCreateEmbedding, jsonBody(req));
    res.json({ info: await createEmbeddingFile(ctx, tenantOf(res), body) });
  });

  r.post('/sdapi/v1/create/hypernetwork', async (req, res) => {
    const body = parseWith(SdapiCreateHypernetwork, jsonBody(req));
    res.json({ info: await createHypernetworkFile(ctx, tenantOf(res), body) });
  });

  const train = (kind: TrainingKind) => async (req: Request, res: Response) => {
    const tenant = tenantOf(res);
    // Refusals (bad fields, unknown dataset or file, a schedule A1111's parser rejects) are 4xx before anything queues.
    const { id } = await submitSdapiTraining(ctx, tenant, kind, jsonBody(req), req.get('idempotency-key'));
    // The status line and the id go out now: a client whose connection drops during a training of hours still
    // learns which training it started. A1111 answers 200 whatever the training's outcome, so nothing is lost.
    res.status(200).type('application/json').set({ 'X-Darkroom-Training-Id': id, Location: `/v1/trainings/${id}` });
    res.flushHeaders();
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableEnded) gone.abort();
    });
    // A client that left while the training was being queued closed the connection before there was a listener.
    if (req.socket.destroyed) gone.abort();
    let info: string;
    try {
      // No timeout: A1111's call blocks for as long as the training takes.
      await waitForTerminal(ctx, id, Number.POSITIVE_INFINITY, gone.signal);
      if (gone.signal.aborted) {
        ctx.log.info({ jobId: id, tenant }, 'sdapi training client went away; the training goes on');
        return;
      }
      const view = await trainingView(ctx, tenant, id);
      info = view ? trainingOutcomeInfo(view) : trainedInfo('', `training ${id} is no longer retained`);
    } catch (e) {
      // Past the status line an error can only travel in the body, as A1111 reports a call that broke.
      ctx.log.error({ jobId: id, tenant, err: e instanceof Error ? e.message : String(e) }, 'waiting for an sdapi training failed');
      info = trainErrorInfo(`${e instanceof Error ? e.message : String(e)} (the training goes on: GET /v1/trainings/${id})`);
    }
    res.end(JSON.stringify({ info }));
  };
  r.post('/sdapi/v1/train/embedding', train('embedding'));
  r.post('/sdapi/v1/train/hypernetwork', train('hypernetwork'));

  return r;
}
