import { rm } from 'node:fs/promises';
import { extname } from 'node:path';
import { Router, type Request } from 'express';
import {
  ASSET_EXTENSIONS, ASSET_KINDS, AssetChecker, assetName, assetStorageKey, assetView, deleteAsset, FarmError, isFarmError, MAX_NETWORK_UPLOAD_BYTES,
  storeAssetContent, type AssetKind, type AssetView,
} from '@darkroom/farm';
import { readLoraDescription } from '@darkroom/farm/lora-assets.js';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { sendStream } from '../send-stream.js';
import { listModels } from '../models.js';
import { drainWhenNear, receiveBody, type ReceivedBody } from '../receive.js';

/** Uploads are checked off the event loop, one at a time, by one checker thread per API process. */
const checker = new AssetChecker();

/** Zip members over their limits are a payload too large once inflated; every other refusal is the file's content. */
function problemStatus(code: string): number {
  return code.startsWith('ZIP_') || code === 'UPLOAD_TOO_LARGE' ? 413 : 422;
}

/**
 * Bytes the tenant may still upload under `name` (a name being replaced gives its own size back); Infinity
 * without TENANT_QUOTA_BYTES. Counted from the registry: every name the tenant holds, every kind.
 */
async function quotaRoom(ctx: ApiContext, tenant: string, kind: AssetKind, name: string): Promise<number> {
  const quota = ctx.cfg.tenantQuotaBytes;
  if (quota === null) return Infinity;
  const used = await ctx.registry.usage(tenant, ASSET_KINDS);
  const replaced = (await ctx.registry.get(tenant, kind, name))?.size ?? 0;
  return Math.max(0, quota - used + replaced);
}

function quotaExceeded(ctx: ApiContext, size: number | null, room: number): FarmError {
  const quota = ctx.cfg.tenantQuotaBytes ?? 0;
  const what = size === null ? 'the upload' : `the upload's ${size} bytes`;
  return new FarmError('TENANT_QUOTA_EXCEEDED', 413, `${what} exceed the ${room} bytes left of this tenant's TENANT_QUOTA_BYTES (${quota}); delete assets to make room`, 'body');
}

function kindParam(req: Request): AssetKind {
  const k = String(req.params.kind);
  if (!(ASSET_KINDS as readonly string[]).includes(k)) throw new FarmError('NOT_FOUND', 404, `no asset kind "${k}"`);
  return k as AssetKind;
}

/** Uploads and listings of checkpoints, embeddings, hypernetworks, LoRAs, VAEs and upscalers, stored by content hash. */
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

  // An embedding uploaded as a PNG or WebP is its own preview (A1111 shows the card's picture): the page lists it
  // with the image. Other files have no picture to show.
  r.get('/v1/embeddings/:name/image', async (req, res) => {
    const name = String(req.params.name);
    const rec = await ctx.registry.get(tenantOf(res), 'embeddings', name);
    const ext = rec ? extname(rec.filename).toLowerCase() : '';
    if (!rec || (ext !== '.png' && ext !== '.webp')) throw new FarmError('NOT_FOUND', 404, `no embedding image named "${name}"`);
    const stream = await ctx.storage.getStream(assetStorageKey('embeddings', rec.sha256));
    if (!stream) throw new FarmError('NOT_FOUND', 404, `embedding "${name}" is gone from storage`);
    res.type(ext === '.png' ? 'image/png' : 'image/webp').set('cache-control', 'private, no-cache');
    await sendStream(stream, res);
  });

  r.put('/v1/:kind/:filename', async (req, res) => {
    const kind = kindParam(req);
    const tenant = tenantOf(res);
    const filename = String(req.params.filename);
    const ext = extname(filename).toLowerCase();
    if (!/^[A-Za-z0-9_. ()+-]{1,200}$/.test(filename) || filename.startsWith('.')) {
      throw new FarmError('INVALID_FILENAME', 400, 'file names may hold letters, digits, spaces and _.()+-', 'filename');
    }
    if (!ASSET_EXTENSIONS[kind].includes(ext)) {
      throw new FarmError('INVALID_FILENAME', 400, `${kind} must end in ${ASSET_EXTENSIONS[kind].join(', ')}`, 'filename');
    }
    const kindMax = kind === 'models' ? ctx.cfg.maxUploadBytes : Math.min(ctx.cfg.maxUploadBytes, MAX_NETWORK_UPLOAD_BYTES);
    const kindLimit = kind === 'models' || kindMax === ctx.cfg.maxUploadBytes ? 'MAX_UPLOAD_BYTES' : `the ${kind} limit`;
    const room = await quotaRoom(ctx, tenant, kind, assetName(filename));
    const declared = Number(req.get('content-length') ?? '0');
    if (declared > kindMax || declared > room) {
      // Refused on the declared length: a body near the limit is drained first so the client reads the 413,
      // a larger one is not read and the connection closes after the answer.
      if (!(await drainWhenNear(req, declared, Math.min(kindMax, room)))) res.set('connection', 'close');
      throw declared > kindMax ? new FarmError('UPLOAD_TOO_LARGE', 413, `upload exceeds ${kindLimit} (${kindMax})`, 'body') : quotaExceeded(ctx, declared, room);
    }
    let file: ReceivedBody;
    try {
      // Streamed to a temp file, hashed on the way, refused the moment it passes the smaller limit.
      file = await receiveBody(req, Math.min(kindMax, room), room < kindMax ? 'TENANT_QUOTA_BYTES' : kindLimit);
    } catch (e) {
      if (isFarmError(e) && e.code === 'UPLOAD_TOO_LARGE' && room < kindMax) throw quotaExceeded(ctx, null, room);
      throw e;
    }
    try {
      if (file.size === 0) throw new FarmError('EMPTY_UPLOAD', 400, 'the upload is empty', 'body');
      const { problem, metadata } = await checker.checkAndDescribe(kind, file.path, filename);
      if (problem) throw new FarmError(problem.code, problemStatus(problem.code), problem.message, 'body');
      // Checked again now the size is known for sure: another upload of the tenant's may have landed meanwhile.
      const roomNow = await quotaRoom(ctx, tenant, kind, assetName(filename));
      if (file.size > roomNow) throw quotaExceeded(ctx, file.size, roomNow);
      // A LoRA's alias and metadata go into its record: prompts name it by either, /sdapi/v1/loras shows both.
      // An upscaler's layout and scale, read by the check, go into its record for /sdapi/v1/upscalers.
      const described = kind === 'loras' ? await readLoraDescription(file.path, filename) : metadata ? { metadata } : {};
      const rec = await storeAssetContent(ctx.storage, ctx.registry, tenant, kind, filename, file, described);
      ctx.log.info({ tenant, kind, name: rec.name, sha256: rec.sha256, size: rec.size }, 'asset uploaded');
      res.status(201).json(assetView(rec));
    } finally {
      await rm(file.path, { force: true });
    }
  });

  r.delete('/v1/:kind/:name', async (req, res) => {
    const kind = kindParam(req);
    const tenant = tenantOf(res);
    const name = String(req.params.name);
    // The bytes are shared by content hash with every other name (any tenant's) for the same file: they go
    // with the last name that refers to them, and workers drop their cached copy.
    const gone = await deleteAsset(ctx.storage, ctx.registry, tenant, kind, name);
    if (!gone) throw new FarmError('NOT_FOUND', 404, `no ${kind} named "${name}"`);
    if (gone.bytesDeleted) await ctx.redis.publish(ctx.keys.assetDeletedChannel, `${kind}/${gone.record.sha256}`);
    ctx.log.info({ tenant, kind, name, sha256: gone.record.sha256, bytesDeleted: gone.bytesDeleted }, 'asset deleted');
    res.status(204).end();
  });

  return r;
}
