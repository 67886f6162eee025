import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request } from 'express';
import { FarmError } from '@darkroom/farm';

/** How far past its limit a body is still read (and dropped) so its sender gets the 413. */
const DRAIN_AFTER_LIMIT_BYTES = 16 * 1024 ** 2;

export interface ReceivedBody {
  path: string;
  sha256: string;
  size: number;
}

/**
 * Streams a raw request body to a temp file while hashing it, refusing it past `maxBytes` (`limitName` is the
 * setting named in the 413). Uploads are never buffered: checkpoints run to gigabytes.
 */
export async function receiveBody(req: Request, maxBytes: number, limitName: string): Promise<ReceivedBody> {
  const dir = join(tmpdir(), 'darkroom-uploads');
  await mkdir(dir, { recursive: true });
  const path = join(dir, randomUUID());
  const hash = createHash('sha256');
  let size = 0;
  let over: FarmError | null = null;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > maxBytes) {
        over ??= new FarmError('UPLOAD_TOO_LARGE', 413, `upload exceeds ${limitName} (${maxBytes})`);
        // A body a little over is read to its end (and dropped) so that the client, still sending, receives
        // the 413 instead of a reset connection; one far over is cut off.
        cb(size - maxBytes > DRAIN_AFTER_LIMIT_BYTES ? over : null);
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      cb(over);
    },
  });
  try {
    await pipeline(req, meter, createWriteStream(path));
  } catch (e) {
    await rm(path, { force: true });
    throw e;
  }
  return { path, sha256: hash.digest('hex'), size };
}

/**
 * Before refusing a body on its declared length: one a little over the limit is read and dropped first, so a
 * client still sending gets the 413 rather than a broken pipe; one far over is left unread and its connection
 * closed after the answer. Resolves true when the body was drained.
 */
export async function drainWhenNear(req: Request, declared: number, limit: number): Promise<boolean> {
  if (declared - limit > DRAIN_AFTER_LIMIT_BYTES) return false;
  let read = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    read += chunk.length;
    if (read - limit > DRAIN_AFTER_LIMIT_BYTES) return false;
  }
  return true;
}
