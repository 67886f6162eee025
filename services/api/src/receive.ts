import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request } from 'express';
import { FarmError } from '@darkroom/farm';

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
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > maxBytes) {
        cb(new FarmError('UPLOAD_TOO_LARGE', 413, `upload exceeds ${limitName} (${maxBytes})`));
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
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
