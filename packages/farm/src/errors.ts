/**
 * A deliberate failure the farm reports to a client: a stable `code`, the HTTP status it maps to and,
 * for bad input, the request field at fault (and, for multi-file uploads, the file within it). Services turn it
 * into `{error: {code, message, field, file}}`.
 */
export class FarmError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly field?: string,
    readonly file?: string,
  ) {
    super(message);
    this.name = 'FarmError';
  }
}

/** A 503 the client should retry: the farm is whole but a dependency is away. `retryAfterS` goes out as Retry-After. */
export class RetryLaterError extends FarmError {
  constructor(code: string, message: string, readonly retryAfterS: number) {
    super(code, 503, message);
    this.name = 'RetryLaterError';
  }
}

/**
 * Failure codes that mean a thing the request named is not there (a model, VAE, embedding, hypernetwork or
 * upscaler the job needed): a synchronous call answers them 404, as A1111's own lookups do.
 */
const MISSING_THING_CODES: ReadonlySet<string> = new Set([
  'MODEL_NOT_FOUND', 'VAE_NOT_FOUND', 'EMBEDDING_NOT_FOUND', 'HYPERNETWORK_NOT_FOUND', 'UPSCALER_NOT_FOUND', 'TOKENIZER_NOT_FOUND',
]);

/**
 * The one place a failed job's code becomes an HTTP status, for the calls that wait for a job and answer its
 * outcome (A1111's synchronous routes): something named and missing is 404; an untyped failure after every retry
 * (`RENDER_FAILED`) is ours, 500; any other typed refusal is about the request's content, 422.
 */
export function failedJobError(code: string, message: string): FarmError {
  const status = code === 'RENDER_FAILED' ? 500 : MISSING_THING_CODES.has(code) ? 404 : 422;
  return new FarmError(code, status, message);
}

export function isFarmError(e: unknown): e is FarmError {
  return e instanceof FarmError;
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string; file?: string };
}

export function errorBody(code: string, message: string, field?: string, file?: string): ErrorBody {
  const error: ErrorBody['error'] = { code, message };
  if (field !== undefined) error.field = field;
  if (file !== undefined) error.file = file;
  return { error };
}
