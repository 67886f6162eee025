import express, { Router } from 'express';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { parseStylesCsv } from '@darkroom/core/text/prompt-styles.js';
import { FarmError } from '@darkroom/farm';
import { StyleStore } from '@darkroom/farm/styles.js';
import { tenantOf } from '../auth.js';
import type { ApiContext } from '../context.js';

/** A styles CSV larger than this is not a styles file. */
const STYLES_CSV_MAX_BYTES = 1024 * 1024;

/**
 * The tenant's prompt styles: `PUT /v1/styles` takes A1111's styles.csv (text/csv or text/plain) and replaces the
 * set; `GET /v1/styles` and A1111's `/sdapi/v1/prompt-styles` list them. Requests name them in `styles`.
 */
export function styleRoutes(ctx: ApiContext): Router {
  const r = Router();
  const store = new StyleStore(ctx.redis, ctx.keys);
  const csv = express.text({ type: ['text/*', 'application/csv'], limit: STYLES_CSV_MAX_BYTES });

  r.get('/v1/styles', async (_req, res) => {
    res.json({ items: await store.list(tenantOf(res)) });
  });

  r.put('/v1/styles', csv, async (req, res) => {
    if (typeof req.body !== 'string') {
      throw new FarmError('UNSUPPORTED_MEDIA_TYPE', 415, 'send the styles CSV as text/csv (name,prompt,negative_prompt)', 'body');
    }
    let styles;
    try {
      styles = parseStylesCsv(req.body);
    } catch (e) {
      if (isDarkroomError(e)) throw new FarmError(e.code, 400, e.message, 'body');
      throw e;
    }
    await store.replace(tenantOf(res), styles);
    res.json({ items: styles });
  });

  r.get('/sdapi/v1/prompt-styles', async (_req, res) => {
    res.json((await store.list(tenantOf(res))).map((s) => ({ name: s.name, prompt: s.prompt, negative_prompt: s.negative_prompt })));
  });

  return r;
}
