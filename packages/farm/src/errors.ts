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
