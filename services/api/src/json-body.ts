import type { Request } from 'express';
import { FarmError } from '@darkroom/farm';

/** The body of a POST that takes a JSON object (`/v1/trainings`, the `/sdapi/v1` training calls). */
export function jsonBody(req: Request): unknown {
  if (!req.is('application/json')) throw new FarmError('UNSUPPORTED_MEDIA_TYPE', 415, 'send the request as application/json');
  if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
    throw new FarmError('INVALID_REQUEST', 400, 'the request body must be a JSON object');
  }
  return req.body as unknown;
}
