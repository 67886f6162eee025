import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';
import type { ApiContext } from './context.js';
import { galleryRoutes } from './routes/gallery.js';

/** Hand-written ES modules and CSS: nothing to build, nothing fetched from elsewhere at run time. */
export const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));

// The page talks only to this origin; images may come from presigned storage URLs on another host.
const CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob: data: http: https:",
  "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "form-action 'none'",
].join('; ');

/**
 * The web page for people at `/` (its files under `/web/`) and the tenant gallery it browses. The page itself is
 * public; every call it makes carries the tenant's key, and `/v1/gallery` sits behind the same tenant check as
 * the rest of `/v1`.
 */
export function webRoutes(ctx: ApiContext): Router {
  const r = Router();
  const page: express.RequestHandler = (_req, res) => {
    res.set({ 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-cache' });
    res.sendFile('index.html', { root: PUBLIC_DIR });
  };
  r.get('/', page);
  r.get('/index.html', page);
  r.use('/web', express.static(PUBLIC_DIR, {
    index: false, etag: true, lastModified: true,
    setHeaders: (res) => {
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('cache-control', 'no-cache');
    },
  }));
  r.use(galleryRoutes(ctx));
  return r;
}
