import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Router, type Request } from 'express';
import {
  datasetLimits, datasetSummary, datasetView, deleteDataset, FarmError, listDatasets, newDatasetId, parseDatasetName,
  readManifest, writeDataset, type StagedDatasetFile,
} from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { stageMultipart } from '../datasets/multipart-upload.js';
import { stageZip } from '../datasets/zip-upload.js';
import { receiveBody } from '../receive.js';

/** Windows browsers label zips `application/x-zip-compressed`. */
const ZIP_TYPES = ['application/zip', 'application/x-zip-compressed'];

function uploadForm(req: Request): 'zip' | 'multipart' {
  if (req.is(ZIP_TYPES)) return 'zip';
  if (req.is('multipart/form-data')) return 'multipart';
  throw new FarmError('UNSUPPORTED_MEDIA_TYPE', 415, 'send a zip (Content-Type: application/zip) or a multipart/form-data form of files', 'Content-Type');
}

/** Training datasets: PNG images with optional same-stem `.txt` captions, per tenant, in storage under `datasets/`. */
export function datasetRoutes(ctx: ApiContext): Router {
  const r = Router();
  const limits = datasetLimits(ctx.cfg);
  const bodyLimit = Math.min(ctx.cfg.maxUploadBytes, limits.maxBytes);

  r.get('/v1/datasets', async (_req, res) => {
    res.json({ items: (await listDatasets(ctx.storage, tenantOf(res))).map(datasetSummary) });
  });

  r.get('/v1/datasets/:id', async (req, res) => {
    const manifest = await readManifest(ctx.storage, tenantOf(res), String(req.params.id));
    if (!manifest) throw new FarmError('NOT_FOUND', 404, `no dataset ${String(req.params.id)}`);
    res.json(datasetView(manifest));
  });

  r.delete('/v1/datasets/:id', async (req, res) => {
    if (!(await deleteDataset(ctx.storage, tenantOf(res), String(req.params.id)))) {
      throw new FarmError('NOT_FOUND', 404, `no dataset ${String(req.params.id)}`);
    }
    res.status(204).end();
  });

  r.post('/v1/datasets', async (req, res) => {
    const tenant = tenantOf(res);
    const form = uploadForm(req);
    const queryName = req.query.name;
    // Refused before the body is read, when the query already says enough.
    if (queryName !== undefined || form === 'zip') parseDatasetName(queryName);
    if (Number(req.get('content-length') ?? '0') > bodyLimit) {
      throw new FarmError('UPLOAD_TOO_LARGE', 413, `upload exceeds DATASET_MAX_BYTES (${bodyLimit})`, 'body');
    }
    const dir = await mkdtemp(join(tmpdir(), 'darkroom-dataset-'));
    try {
      let name: string;
      let files: StagedDatasetFile[];
      if (form === 'zip') {
        name = parseDatasetName(queryName);
        const body = await receiveBody(req, bodyLimit, 'DATASET_MAX_BYTES');
        try {
          if (body.size === 0) throw new FarmError('EMPTY_UPLOAD', 400, 'the upload is empty', 'body');
          files = await stageZip(body.path, body.size, limits, dir);
        } finally {
          await rm(body.path, { force: true });
        }
      } else {
        const staged = await stageMultipart(req, limits, bodyLimit, dir);
        if (queryName !== undefined && staged.fields.has('name')) {
          throw new FarmError('INVALID_REQUEST', 400, 'give the name in the query or in the form, not both', 'name');
        }
        name = parseDatasetName(queryName ?? staged.fields.get('name'));
        files = staged.files;
      }
      const manifest = await writeDataset(ctx.storage, tenant, { id: newDatasetId(), name, files });
      ctx.log.info({ tenant, dataset: manifest.id, name, files: manifest.files.length, bytes: manifest.bytes }, 'dataset uploaded');
      res.status(201).json(datasetView(manifest));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  return r;
}
