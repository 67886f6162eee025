import type { Logger, Storage } from '@darkroom/farm';

export interface OutputWrite {
  key: string;
  bytes: Uint8Array;
}

/** The job was cancelled while its outputs waited for storage: they are dropped. */
export class OutputsAbandoned extends Error {
  constructor() {
    super('cancelled while waiting for storage');
    this.name = 'OutputsAbandoned';
  }
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5_000;

/**
 * Writes a finished render's outputs. Storage that fails (an S3 outage, a read-only or full disk) is retried with
 * capped exponential backoff for up to `windowMs` (STORAGE_RETRY_WINDOW_MS), and the caller stays inside the
 * BullMQ processor meanwhile, so the job remains active, its lock keeps being renewed, and no attempt is spent:
 * the render is not repeated, and it completes once storage answers. The bytes wait in memory; a worker runs one
 * job at a time, so that is one job's images at most. Keys are fixed per job and index, and a write replaces
 * the key, so a write retried after a timeout that did land leaves one copy, not two. Only when the window is
 * over does the attempt fail (retryable), as it did at once before.
 */
export async function storeOutputs(opts: {
  storage: Storage;
  writes: readonly OutputWrite[];
  windowMs: number;
  log: Logger;
  /** Asked before each retry; true drops the outputs (OutputsAbandoned). */
  cancelled: () => Promise<boolean>;
  sleep?: (ms: number) => Promise<void>;
}): Promise<void> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const started = Date.now();
  let failures = 0;
  let delay = FIRST_RETRY_MS;
  for (const w of opts.writes) {
    for (;;) {
      try {
        await opts.storage.put(w.key, w.bytes, 'image/png');
        break;
      } catch (e) {
        const waited = Date.now() - started;
        if (waited >= opts.windowMs) {
          throw new Error(`STORAGE_UNAVAILABLE: could not store ${w.key} for ${Math.round(waited / 1000)} s (STORAGE_RETRY_WINDOW_MS): ${(e as Error).message}`);
        }
        if (failures === 0) {
          opts.log.warn({ key: w.key, err: (e as Error).message, windowMs: opts.windowMs }, 'storage unavailable: keeping the rendered images and retrying');
        }
        failures++;
        await sleep(Math.min(delay, opts.windowMs - waited));
        delay = Math.min(delay * 2, MAX_RETRY_MS);
        if (await opts.cancelled().catch(() => false)) throw new OutputsAbandoned();
      }
    }
  }
  if (failures > 0) opts.log.info({ waitedMs: Date.now() - started, failures }, 'storage is back: outputs stored');
}
