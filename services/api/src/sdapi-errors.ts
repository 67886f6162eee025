import type { ErrorRequestHandler, RequestHandler } from 'express';
import { z } from 'zod';
import { errorBody, FarmError, isFarmError } from '@darkroom/farm';

/** One entry of FastAPI's validation error list (pydantic 1, which A1111 1.10 runs on). */
export interface ValidationDetail {
  loc: (string | number)[];
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

/**
 * A request body A1111's models would reject: FastAPI answers it with 422 and `{detail: [...]}`, one entry per
 * problem, and clients (webuiapi, the Krita and Photoshop plugins) read that shape. Carries the first field too,
 * so logs and `/v1`-style readers still see which one.
 */
export class SdapiValidationError extends FarmError {
  constructor(readonly detail: ValidationDetail[]) {
    const first = detail[0];
    const field = first ? first.loc.slice(1).join('.') || undefined : undefined;
    super('VALIDATION_ERROR', 422, first ? `${field ?? 'body'}: ${first.msg}` : 'invalid request', field);
  }
}

const TYPE_WORDS: Record<string, [string, string]> = {
  number: ['value is not a valid float', 'type_error.float'],
  int: ['value is not a valid integer', 'type_error.integer'],
  string: ['str type expected', 'type_error.str'],
  boolean: ['value could not be parsed to a boolean', 'type_error.bool'],
  array: ['value is not a valid list', 'type_error.list'],
  object: ['value is not a valid dict', 'type_error.dict'],
  record: ['value is not a valid dict', 'type_error.dict'],
};

/** The schema at a path of an object schema, through defaults and nullables (zod reports an int as a number). */
function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let s: z.ZodType | undefined = schema;
  for (const key of path) {
    while (s instanceof z.ZodDefault || s instanceof z.ZodNullable || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
    if (s instanceof z.ZodObject && typeof key === 'string') s = (s.shape as Record<string, z.ZodType>)[key];
    else if (s instanceof z.ZodArray && typeof key === 'number') s = s.element as z.ZodType;
    else return undefined;
  }
  while (s instanceof z.ZodDefault || s instanceof z.ZodNullable || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s;
}

/** A zod issue in pydantic 1's words and error types, so clients matching on `type` or `msg` see A1111's. */
function toDetail(issue: z.core.$ZodIssue, schema: z.ZodType): ValidationDetail {
  const loc: (string | number)[] = ['body', ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
  switch (issue.code) {
    case 'invalid_type': {
      if (/received undefined/.test(issue.message)) return { loc, msg: 'field required', type: 'value_error.missing' };
      const target = schemaAt(schema, issue.path);
      const expected = issue.expected === 'number' && target instanceof z.ZodNumber && target.isInt ? 'int' : issue.expected;
      const [msg, type] = TYPE_WORDS[expected] ?? [issue.message, 'type_error'];
      return { loc, msg, type };
    }
    case 'too_small': {
      const limit = Number(issue.minimum);
      if (issue.origin === 'string') return { loc, msg: `ensure this value has at least ${limit} characters`, type: 'value_error.any_str.min_length', ctx: { limit_value: limit } };
      if (issue.origin === 'array') return { loc, msg: `ensure this value has at least ${limit} items`, type: 'value_error.list.min_items', ctx: { limit_value: limit } };
      return issue.inclusive === false
        ? { loc, msg: `ensure this value is greater than ${limit}`, type: 'value_error.number.not_gt', ctx: { limit_value: limit } }
        : { loc, msg: `ensure this value is greater than or equal to ${limit}`, type: 'value_error.number.not_ge', ctx: { limit_value: limit } };
    }
    case 'too_big': {
      const limit = Number(issue.maximum);
      if (issue.origin === 'string') return { loc, msg: `ensure this value has at most ${limit} characters`, type: 'value_error.any_str.max_length', ctx: { limit_value: limit } };
      if (issue.origin === 'array') return { loc, msg: `ensure this value has at most ${limit} items`, type: 'value_error.list.max_items', ctx: { limit_value: limit } };
      return issue.inclusive === false
        ? { loc, msg: `ensure this value is less than ${limit}`, type: 'value_error.number.not_lt', ctx: { limit_value: limit } }
        : { loc, msg: `ensure this value is less than or equal to ${limit}`, type: 'value_error.number.not_le', ctx: { limit_value: limit } };
    }
    case 'not_multiple_of':
      return { loc, msg: `ensure this value is a multiple of ${Number(issue.divisor)}`, type: 'value_error.number.not_multiple', ctx: { multiple_of: Number(issue.divisor) } };
    case 'invalid_value':
      return { loc, msg: `unexpected value; permitted: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`, type: 'value_error.const', ctx: { permitted: issue.values } };
    case 'invalid_format':
      return { loc, msg: issue.message, type: 'value_error.str.regex' };
    default:
      return { loc, msg: issue.message, type: 'value_error' };
  }
}

/** Parses an `/sdapi/v1` body as A1111's FastAPI would: every problem listed, 422. */
export function parseSdapi<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (!r.success) throw new SdapiValidationError(r.error.issues.map((i) => toDetail(i, schema)));
  return r.data;
}

/** A request field A1111 knows that this farm cannot honour: refused by name, never silently ignored. */
export function unsupported(field: string, message: string): FarmError {
  return new FarmError('UNSUPPORTED', 422, `${field}: ${message}`, field);
}

/** An A1111 route whose whole function this farm does not have: 422 naming the route, no field at fault. */
export function unsupportedRoute(route: string, message: string): FarmError {
  return new FarmError('UNSUPPORTED', 422, `${route}: ${message}`);
}

/** No such route: FastAPI's `{"detail": "Not Found"}`, with Darkroom's error object beside it. */
export const sdapiNotFound: RequestHandler = (req, res) => {
  res.status(404).json({ detail: 'Not Found', ...errorBody('NOT_FOUND', `no route ${req.method} ${req.baseUrl}${req.path}`) });
};

/**
 * Errors on `/sdapi/v1` in A1111's words: validation problems as FastAPI's `{detail: [...]}` (a body that is not
 * JSON included, as FastAPI reports it), every other refusal with A1111's `detail` text next to Darkroom's
 * `error` object, which existing Darkroom clients read. Anything else goes on to the common handler.
 */
export const sdapiErrorHandler: ErrorRequestHandler = (err: unknown, _req, res, next) => {
  if (res.headersSent) {
    next(err);
    return;
  }
  if (err instanceof SdapiValidationError) {
    res.status(422).json({ detail: err.detail });
    return;
  }
  const e = err as { type?: string; message?: string; body?: unknown };
  if (e.type === 'entity.parse.failed') {
    res.status(422).json({ detail: [{ loc: ['body', 0], msg: e.message ?? 'invalid JSON', type: 'value_error.jsondecode' }] });
    return;
  }
  if (isFarmError(err) && err.status < 500) {
    res.status(err.status).json({ detail: err.message, ...errorBody(err.code, err.message, err.field, err.file) });
    return;
  }
  next(err);
};
