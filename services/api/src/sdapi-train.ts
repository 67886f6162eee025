import {
  findDataset, isFarmError, renameErrorField, SdapiTrainEmbedding, SdapiTrainHypernetwork, sdapiFieldNames, trainingBodyFromSdapi, FarmError,
  type SdapiTrainBody, type TrainingKind,
} from '@darkroom/farm';
import type { ApiContext } from './context.js';
import { parseWith } from './http-errors.js';
import { tenantCheckpoint, tenantClipSkip, tenantOptions } from './sdapi-options.js';
import { submitTrainingBody } from './training-submit.js';

function parseCall(kind: TrainingKind, body: unknown): SdapiTrainBody {
  return kind === 'embedding' ? { kind, body: parseWith(SdapiTrainEmbedding, body) } : { kind, body: parseWith(SdapiTrainHypernetwork, body) };
}

/**
 * A1111's `train_embedding` / `train_hypernetwork` call as a farm training: the dataset `data_root` names, the
 * tenant's checkpoint and clip skip (A1111 trains on the loaded model with its settings), then submitted exactly as
 * POST /v1/trainings submits, every refusal naming the field as the A1111 call named it.
 */
export async function submitSdapiTraining(
  ctx: ApiContext, tenant: string, kind: TrainingKind, rawBody: unknown, idempotencyKey?: string,
): Promise<{ id: string; replayed: boolean }> {
  const call = parseCall(kind, rawBody);
  const dataset = await findDataset(ctx.storage, tenant, call.body.data_root);
  if (!dataset) {
    throw new FarmError('UNKNOWN_DATASET', 400, `data_root: no dataset with the id or name "${call.body.data_root}" (POST /v1/datasets uploads one)`, 'data_root');
  }
  const options = await tenantOptions(ctx, tenant);
  const body = trainingBodyFromSdapi(call, { datasetId: dataset.id, model: await tenantCheckpoint(ctx, tenant, options), clipSkip: tenantClipSkip(options) });
  try {
    return await submitTrainingBody(ctx, tenant, body, rawBody, idempotencyKey);
  } catch (e) {
    throw isFarmError(e) ? renameErrorField(e, sdapiFieldNames(kind)) : e;
  }
}
