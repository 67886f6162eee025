import type { Request, RequestHandler } from 'express';
import { ASSET_KINDS } from '@darkroom/farm';

const UPLOAD_PATH = new RegExp(`^/v1/(${ASSET_KINDS.join('|')})/[^/]+$`);

/** `PUT /v1/:kind/:filename`: the body is the file itself, whatever Content-Type the client sent. */
export function isAssetUpload(req: Request): boolean {
  return req.method === 'PUT' && UPLOAD_PATH.test(req.path);
}

/**
 * `parser` for every request but asset uploads: a file sent as `application/json` (curl and many clients default
 * to it) must reach the upload route as raw bytes, not be parsed, limited to MAX_BODY_BYTES and lost.
 */
export function exceptAssetUploads(parser: RequestHandler): RequestHandler {
  return (req, res, next) => (isAssetUpload(req) ? next() : parser(req, res, next));
}
