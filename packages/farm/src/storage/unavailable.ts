import { RetryLaterError } from '../errors.js';

/** Failures of the store itself rather than of the request: the network to S3, the server, or the disk. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EROFS', 'ENOSPC', 'EIO',
]);

/**
 * True when a storage call failed because the store is away (S3 unreachable or answering 5xx, a read-only or full
 * disk), as opposed to a bad key or a missing object. The API has no other outbound connection besides Redis,
 * whose errors are told apart first (`isRedisUnavailable`).
 */
export function isStorageUnavailable(e: unknown, depth = 0): boolean {
  if (typeof e !== 'object' || e === null || depth > 3) return false;
  const err = e as { code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: number }; cause?: unknown };
  if (typeof err.code === 'string' && UNAVAILABLE_CODES.has(err.code)) return true;
  if (typeof err.$metadata?.httpStatusCode === 'number' && err.$metadata.httpStatusCode >= 500) return true;
  if (err.name === 'TimeoutError' || err.name === 'RequestTimeout') return true;
  return err.cause !== undefined && isStorageUnavailable(err.cause, depth + 1);
}

export const STORAGE_RETRY_AFTER_S = 10;

export function storageUnavailableError(): RetryLaterError {
  return new RetryLaterError('STORAGE_UNAVAILABLE', `storage cannot be reached right now; retry in ${STORAGE_RETRY_AFTER_S} s`, STORAGE_RETRY_AFTER_S);
}
