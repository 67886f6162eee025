import { timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { DEFAULT_TENANT, FarmError, type ApiConfig } from '@darkroom/farm';

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function lookupKey(keys: Map<string, string>, candidate: string): string | undefined {
  for (const [key, tenant] of keys) if (safeEqual(key, candidate)) return tenant;
  return undefined;
}

/** `Bearer <key>`, or on /sdapi `Basic base64(user:key)` as A1111 clients configured with --api-auth send it. */
export function credentials(req: Request, allowBasic: boolean): string | undefined {
  const h = req.get('authorization');
  if (!h) return undefined;
  const [scheme, value] = h.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer' && value) return value.trim();
  if (allowBasic && scheme?.toLowerCase() === 'basic' && value) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon >= 0 ? decoded.slice(colon + 1) : decoded;
  }
  return undefined;
}

export function tenantOf(res: { locals: Record<string, unknown> }): string {
  return res.locals.tenant as string;
}

/** Each API key is a tenant. With no keys configured the API is loopback-only and everyone is the default tenant. */
export function requireTenant(cfg: ApiConfig, opts: { allowBasic: boolean }): RequestHandler {
  return (req, res, next) => {
    if (cfg.apiKeys.size === 0) {
      res.locals.tenant = DEFAULT_TENANT;
      next();
      return;
    }
    const key = credentials(req, opts.allowBasic);
    const tenant = key === undefined ? undefined : lookupKey(cfg.apiKeys, key);
    if (!tenant) {
      if (opts.allowBasic) res.set('WWW-Authenticate', 'Basic realm="darkroom"');
      next(new FarmError('UNAUTHORIZED', 401, key === undefined ? 'send an API key as "Authorization: Bearer <key>"' : 'unknown API key'));
      return;
    }
    res.locals.tenant = tenant;
    next();
  };
}

/** The admin key guards the queue dashboard; browsers send it as the Basic password. Unset = admin routes are off. */
export function requireAdmin(cfg: ApiConfig): RequestHandler {
  return (req, res, next) => {
    if (!cfg.adminKey) {
      next(new FarmError('NOT_FOUND', 404, 'admin routes are disabled (set ADMIN_KEY)'));
      return;
    }
    const key = credentials(req, true);
    if (key === undefined || !safeEqual(key, cfg.adminKey)) {
      res.set('WWW-Authenticate', 'Basic realm="darkroom-admin"');
      next(new FarmError('UNAUTHORIZED', 401, 'admin key required'));
      return;
    }
    next();
  };
}
