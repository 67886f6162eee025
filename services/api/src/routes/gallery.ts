import { Router, type Request } from 'express';
import { FarmError, isJobId, outputKey } from '@darkroom/farm';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { sendStream } from '../send-stream.js';
import { cursorOf, matchesFilter, pageAfter, tenantGallery, thumbKey, thumbnailPng, type GalleryFilter } from '../gallery-index.js';

const MAX_LIMIT = 200;

function queryString(req: Request, name: string, max: number): string | undefined {
  const v = req.query[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string' || v.length > max) throw new FarmError('INVALID_REQUEST', 400, `${name}: a string of at most ${max} characters`, name);
  return v;
}

function queryTime(req: Request, name: string): number | undefined {
  const v = queryString(req, name, 40);
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new FarmError('INVALID_REQUEST', 400, `${name}: an ISO date or time`, name);
  return t;
}

function queryLimit(req: Request): number {
  const v = queryString(req, 'limit', 4);
  if (v === undefined) return 50;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new FarmError('INVALID_REQUEST', 400, `limit: an integer from 1 to ${MAX_LIMIT}`, 'limit');
  return n;
}

function outputParams(req: Request): { id: string; index: number } {
  const id = String(req.params.id);
  const index = Number(req.params.index);
  if (!isJobId(id) || !/^\d{1,4}$/.test(String(req.params.index))) throw new FarmError('OUTPUT_NOT_FOUND', 404, `no output ${id}/${String(req.params.index)}`);
  return { id, index };
}

/**
 * `/v1/gallery`: the tenant's stored outputs, newest first, paginated by cursor and filtered by prompt text
 * (`q`), model and date (`since`, `until`), with thumbnails made on first request and kept in storage. Only
 * keys under the tenant's own prefix are ever read, so no parameter can reach another tenant's images.
 */
export function galleryRoutes(ctx: ApiContext): Router {
  const r = Router();
  const metaKey = (tenant: string) => `${ctx.cfg.queuePrefix}:darkroom:gallery:${tenant}`;

  r.get('/v1/gallery', async (req, res) => {
    const filter: GalleryFilter = {
      q: queryString(req, 'q', 500), model: queryString(req, 'model', 200), since: queryTime(req, 'since'), until: queryTime(req, 'until'),
    };
    const cursor = queryString(req, 'cursor', 40);
    const limit = queryLimit(req);
    const tenant = tenantOf(res);
    const all = (await tenantGallery(ctx.storage, ctx.redis, metaKey(tenant), tenant)).filter((e) => matchesFilter(e, filter));
    const { items, next } = pageAfter(all, cursor, limit);
    res.set('cache-control', 'no-store').json({
      items: items.map((e) => ({
        ...e, cursor: cursorOf(e),
        thumb_url: `/v1/gallery/${e.id}/${e.index}/thumb.png`, image_url: `/v1/gallery/${e.id}/${e.index}/image.png`,
      })),
      next_cursor: next,
      total: all.length,
    });
  });

  r.get('/v1/gallery/:id/:index/image.png', async (req, res) => {
    const { id, index } = outputParams(req);
    const stream = await ctx.storage.getStream(outputKey(tenantOf(res), id, index));
    if (!stream) throw new FarmError('OUTPUT_NOT_FOUND', 404, `no output ${id}/${index}`);
    res.type('image/png').set('cache-control', 'private, max-age=86400, immutable');
    await sendStream(stream, res);
  });

  r.get('/v1/gallery/:id/:index/thumb.png', async (req, res) => {
    const { id, index } = outputParams(req);
    const tenant = tenantOf(res);
    let thumb = await ctx.storage.get(thumbKey(tenant, id, index));
    if (!thumb) {
      const full = await ctx.storage.get(outputKey(tenant, id, index));
      if (!full) throw new FarmError('OUTPUT_NOT_FOUND', 404, `no output ${id}/${index}`);
      try {
        thumb = thumbnailPng(full);
      } catch {
        // Not decodable as a PNG we can shrink: the original stands in for its thumbnail.
        thumb = full;
      }
      await ctx.storage.put(thumbKey(tenant, id, index), thumb, 'image/png');
    }
    res.type('image/png').set('cache-control', 'private, max-age=86400, immutable').send(Buffer.from(thumb));
  });

  return r;
}
