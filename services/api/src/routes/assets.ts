import { rm } from 'node:fs/promises';
import { extname } from 'node:path';
import { Router, type Request } from 'express';
import {
  ASSET_EXTENSIONS, ASSET_KINDS, assetName, assetStorageKey, assetView, FarmError, type AssetKind, type AssetView,
} from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { listModels } from '../models.js';
import { receiveBody } from '../receive.js';

function kindParam(req: Request): AssetKind {
  const k = String(req.params.kind);
  if (!(ASSET_KINDS as readonly string[]).includes(k)) throw new FarmError('NOT_FOUND', 404, `no asset kind "${k}"`);
  return k as AssetKind;
}

/** Uploads and listings of checkpoints, embeddings and hypernetworks, stored by content hash. */
export function assetRoutes(ctx: ApiContext): Router {
  const r = Router();

  r.get('/v1/:kind', async (req, res) => {
    const kind = kindParam(req);
    const tenant = tenantOf(res);
    let items: AssetView[];
    if (kind === 'models') {
      items = (await listModels(ctx.registry, ctx.cfg.modelsDir, tenant)).map((m) => ({
        name: m.model_name, filename: m.source === 'models_dir' ? m.title : m.filename, sha256: m.sha256 ?? '', size: 0, source: m.source,
      }));
      const uploads = new Map((await ctx.registry.list(tenant, 'models')).map((u) => [u.name, u.size]));
      items = items.map((i) => (i.source === 'upload' ? { ...i, size: uploads.get(i.name) ?? 0 } : i));
    } else {
      items = (await ctx.registry.list(tenant, kind)).map(assetView);
    }
    res.json({ items });
  });

  r.put('/v1/:kind/:filename', async (req, res) => {
    const kind = kindParam(req);
    const filename = String(req.params.filename);
    const ext = extname(filename).toLowerCase();
    if (!/^[A-Za-z0-9_. ()+-]{1,200}$/.test(filename) || filename.startsWith('.')) {
      throw new FarmError('INVALID_FILENAME', 400, 'file names may hold letters, digits, spaces and _.()+-', 'filename');
    }
    if (!ASSET_EXTENSIONS[kind].includes(ext)) {
      throw new FarmError('INVALID_FILENAME', 400, `${kind} must end in ${ASSET_EXTENSIONS[kind].join(', ')}`, 'filename');
    }
    const declared = Number(req.get('content-length') ?? '0');
    if (declared > ctx.cfg.maxUploadBytes) throw new FarmError('UPLOAD_TOO_LARGE', 413, `upload exceeds MAX_UPLOAD_BYTES (${ctx.cfg.maxUploadBytes})`);
    const file = await receiveBody(req, ctx.cfg.maxUploadBytes, 'MAX_UPLOAD_BYTES');
    try {
      if (file.size === 0) throw new FarmError('EMPTY_UPLOAD', 400, 'the upload is empty', 'body');
      const key = assetStorageKey(kind, file.sha256);
      if (!(await ctx.storage.exists(key))) await ctx.storage.putFile(key, file.path);
      const rec = { name: assetName(filename), filename, sha256: file.sha256, size: file.size, uploadedAt: new Date().toISOString() };
      await ctx.registry.put(tenantOf(res), kind, rec);
      ctx.log.info({ tenant: tenantOf(res), kind, name: rec.name, sha256: rec.sha256, size: rec.size }, 'asset uploaded');
      res.status(201).json(assetView(rec));
    } finally {
      await rm(file.path, { force: true });
    }
  });

  r.delete('/v1/:kind/:name', async (req, res) => {
    const kind = kindParam(req);
    // Bytes stay in storage: they are shared by content hash with whoever else uploaded the same file.
    if (!(await ctx.registry.remove(tenantOf(res), kind, String(req.params.name)))) {
      throw new FarmError('NOT_FOUND', 404, `no ${kind} named "${String(req.params.name)}"`);
    }
    res.status(204).end();
  });

  return r;
}
