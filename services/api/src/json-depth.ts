import type { RequestHandler } from 'express';
import { FarmError } from '@darkroom/farm';

/**
 * How deep a JSON body may nest. No request field needs more than a few levels; a body nested thousands deep
 * parses fine but overflows the stack of every recursive walk after it (JSON.stringify when the job is queued,
 * the worker's parse), so it is refused once here, before any route sees it.
 */
export const MAX_JSON_DEPTH = 64;

/** The top-level field under which `value` nests deeper than `limit` (the top level is depth 1), or null. */
export function tooDeepField(value: unknown, limit: number): string | null {
  // An explicit stack: the walk must not itself recurse on a hostile body.
  if (typeof value !== 'object' || value === null) return null;
  const stack: { v: object; depth: number; field: string }[] = [{ v: value, depth: 1, field: '' }];
  while (stack.length > 0) {
    const { v, depth, field } = stack.pop()!;
    if (depth > limit) return field || '(body)';
    for (const [k, child] of Object.entries(v)) {
      // Only containers go on the stack: a long array of numbers costs no stack entries.
      if (typeof child === 'object' && child !== null) stack.push({ v: child, depth: depth + 1, field: field || k });
    }
  }
  return null;
}

/** Refuses a parsed JSON body nested deeper than MAX_JSON_DEPTH with 400 JSON_TOO_DEEP naming the field. */
export const jsonDepthLimit: RequestHandler = (req, _res, next) => {
  const field = tooDeepField(req.body as unknown, MAX_JSON_DEPTH);
  if (field === null) {
    next();
    return;
  }
  next(new FarmError('JSON_TOO_DEEP', 400, `${field}: JSON nested deeper than ${MAX_JSON_DEPTH} levels`, field === '(body)' ? undefined : field));
};
