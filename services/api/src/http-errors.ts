import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { z } from 'zod';
import {
  errorBody, FarmError, isFarmError, isRedisUnavailable, isStorageUnavailable, redisUnavailableError, RetryLaterError, storageUnavailableError,
} from '@darkroom/farm';

/** The first zod issue becomes one 400 naming the field (dotted path, array indexes included). */
export function validationError(error: z.ZodError): FarmError {
  const issue = error.issues[0]!;
  let path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) path = [...path, issue.keys[0]!];
  const field = path.join('.') || undefined;
  const message = issue.code === 'unrecognized_keys'
    ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
    : issue.message;
  return new FarmError('INVALID_REQUEST', 400, field ? `${field}: ${message}` : message, field);
}

export function parseWith<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (!r.success) throw validationError(r.error);
  return r.data;
}

export const notFound: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('NOT_FOUND', `no route ${req.method} ${req.path}`));
};

/**
 * Every error leaves as `{error: {code, message, field?}}`. Body-parser failures are the client's (4xx); Redis or
 * storage out of reach is a 503 with Retry-After (whichever call of the request found it gone); only a fault of
 * ours is a 500, and its message is not leaked.
 */
export function errorHandler(log: { error: (o: object, m: string) => void }): ErrorRequestHandler {
  return (caught: unknown, req, res, _next) => {
    if (res.headersSent) {
      res.end();
      return;
    }
    const err = isRedisUnavailable(caught) ? redisUnavailableError() : isStorageUnavailable(caught) ? storageUnavailableError() : caught;
    if (err instanceof RetryLaterError) res.set('Retry-After', String(err.retryAfterS));
    if (isFarmError(err)) {
      res.status(err.status).json(errorBody(err.code, err.message, err.field, err.file));
      return;
    }
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.too.large') {
      res.status(413).json(errorBody('BODY_TOO_LARGE', 'request body exceeds MAX_BODY_BYTES'));
      return;
    }
    if (e.type === 'entity.parse.failed') {
      res.status(400).json(errorBody('INVALID_JSON', `request body is not valid JSON: ${e.message ?? ''}`.trim()));
      return;
    }
    if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') {
      res.status(415).json(errorBody('UNSUPPORTED_ENCODING', e.message ?? 'unsupported encoding'));
      return;
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json(errorBody('BAD_REQUEST', e.message ?? 'bad request'));
      return;
    }
    log.error({ err: err instanceof Error ? err.stack : String(err), path: req.path }, 'unhandled error');
    res.status(500).json(errorBody('INTERNAL', 'internal error; see the API log'));
  };
}
