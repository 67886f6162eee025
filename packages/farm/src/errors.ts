/**
 * A deliberate failure the farm reports to a client: a stable `code`, the HTTP status it maps to and,
 * for bad input, the request field at fault. Services turn it into `{error: {code, message, field}}`.
 */
export class FarmError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'FarmError';
  }
}

export function isFarmError(e: unknown): e is FarmError {
  return e instanceof FarmError;
}

export interface ErrorBody {
  error: { code: string; message: string; field?: string };
}

export function errorBody(code: string, message: string, field?: string): ErrorBody {
  return { error: field === undefined ? { code, message } : { code, message, field } };
}
