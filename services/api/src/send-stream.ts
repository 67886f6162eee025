import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Response } from 'express';

/**
 * Sends a storage download as the response body. Through `pipeline`, not `.pipe()`: when the client goes away
 * mid-body (a gallery scrolled past, a download cancelled) the storage stream is destroyed with the response,
 * which hands its connection back to the storage client's pool. `.pipe()` leaves it paused, holding its socket
 * for good, and once the pool's sockets (50 in the AWS SDK) are all held that way every later storage call of
 * the process waits for a socket forever.
 */
export async function sendStream(stream: Readable, res: Response): Promise<void> {
  // Any failure ends the response where it stands (pipeline destroys it, so the client sees a cut body, not a
  // hang); a client that left is no failure at all. Nothing is left to answer either way.
  await pipeline(stream, res).catch(() => undefined);
}
