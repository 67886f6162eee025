import type { Worker } from 'node:worker_threads';
import type { PngInfo } from '@darkroom/core/formats/png-info.js';
import { FarmError, startTsThread } from '@darkroom/farm';

export interface PngInfoRequest {
  readonly id: number;
  readonly bytes: Uint8Array;
}

export type PngInfoReply =
  | { readonly id: number; readonly info: PngInfo }
  | { readonly id: number; readonly error: { readonly code: string; readonly message: string } };

/** The reader thread's heap: a PNG's text is inflated to 8 MiB at most, the bytes are the request's. */
const THREAD_HEAP_MB = 256;

let thread: Worker | null = null;
let nextId = 1;
const pending = new Map<number, (r: PngInfoReply) => void>();

function readerThread(): Worker {
  if (thread) return thread;
  const w = startTsThread(new URL('./png-info-thread.ts', import.meta.url), null, { resourceLimits: { maxOldGenerationSizeMb: THREAD_HEAP_MB } });
  w.unref();
  w.on('message', (r: PngInfoReply) => {
    pending.get(r.id)?.(r);
    pending.delete(r.id);
  });
  const lost = (why: string): void => {
    if (thread === w) thread = null;
    for (const [id, resolve] of pending) resolve({ id, error: { code: 'PNG_UNREADABLE', message: `the image could not be read (${why})` } });
    pending.clear();
  };
  w.on('error', (e) => lost(e.message));
  w.on('exit', (code) => lost(`reader exited with code ${code}`));
  thread = w;
  return w;
}

/**
 * `/sdapi/v1/png-info` on the client's bytes, read on a thread of its own so that hostile PNGs (CRCs over large
 * chunks, compressed text inflated to the ceiling) cost the API's event loop nothing. Every way the bytes can fail
 * to be a readable PNG (truncated, bad CRC, a JPEG, text that inflates past the ceiling) is the client's: a 4xx
 * naming `image`, with the reader's code.
 */
export async function readPngInfo(bytes: Uint8Array): Promise<PngInfo> {
  const id = nextId++;
  const reply = await new Promise<PngInfoReply>((resolve) => {
    pending.set(id, resolve);
    readerThread().postMessage({ id, bytes } satisfies PngInfoRequest);
  });
  if ('info' in reply) return reply.info;
  const status = reply.error.code === 'PNG_TEXT_TOO_LARGE' ? 413 : 400;
  throw new FarmError(reply.error.code, status, `image: ${reply.error.message}`, 'image');
}
