import { fileURLToPath } from 'node:url';
import { FolderStorage } from './folder.js';
import { parseS3Url, S3Storage } from './s3.js';
import type { Storage } from './types.js';

export type { Storage } from './types.js';
export { assertKey } from './types.js';
export { FolderStorage } from './folder.js';
export { S3Storage, parseS3Url } from './s3.js';
export { isStorageUnavailable, storageUnavailableError, STORAGE_RETRY_AFTER_S } from './unavailable.js';

/** `file:///abs/path` -> folder driver; `s3://bucket?...` -> S3 driver. */
export function openStorage(url: string): Storage {
  if (url.startsWith('file:')) return new FolderStorage(fileURLToPath(url));
  if (url.startsWith('s3:')) return new S3Storage(parseS3Url(url));
  throw new Error(`STORAGE_URL must start with file:// or s3://, got "${url}"`);
}
