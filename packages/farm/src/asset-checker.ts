import type { Worker } from 'node:worker_threads';
import type { AssetCheck, AssetProblem } from './asset-check.js';
import type { AssetKind } from './schemas.js';
import { startTsThread } from './ts-thread.js';

export interface CheckRequest {
  readonly id: number;
  readonly kind: AssetKind;
  readonly path: string;
  readonly filename: string;
}

export interface CheckReply extends AssetCheck {
  readonly id: number;
}

/** The checker thread's JavaScript heap (a pickle's object graph); file bytes live outside it. */
const CHECK_HEAP_MB = 1024;

/**
 * Checks uploads on a thread of their own (asset-check-thread.ts), one at a time so that concurrent uploads
 * cannot add up their checks' memory. A thread that dies (a file that exhausts its heap) fails the check in hand
 * as ASSET_UNREADABLE and is replaced on the next check. The thread does not keep the process alive.
 */
export class AssetChecker {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (c: AssetCheck) => void>();
  private queue: Promise<unknown> = Promise.resolve();

  async check(kind: AssetKind, path: string, filename: string): Promise<AssetProblem | null> {
    return (await this.checkAndDescribe(kind, path, filename)).problem;
  }

  /** The check and what the file says of itself that its record keeps (see checkAndDescribeAssetFile). */
  checkAndDescribe(kind: AssetKind, path: string, filename: string): Promise<AssetCheck> {
    const run = this.queue.then(() => this.send(kind, path, filename));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = startTsThread(new URL('./asset-check-thread.ts', import.meta.url), null, { resourceLimits: { maxOldGenerationSizeMb: CHECK_HEAP_MB } });
    w.unref();
    w.on('message', (m: CheckReply | { type: 'ready' }) => {
      if ('id' in m) {
        this.pending.get(m.id)?.(m.metadata ? { problem: m.problem, metadata: m.metadata } : { problem: m.problem });
        this.pending.delete(m.id);
      }
    });
    const lost = (why: string): void => {
      if (this.worker === w) this.worker = null;
      for (const resolve of this.pending.values()) resolve({ problem: { code: 'ASSET_UNREADABLE', message: `the file could not be checked (${why})` } });
      this.pending.clear();
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => lost(`checker exited with code ${code}`));
    this.worker = w;
    return w;
  }

  private send(kind: AssetKind, path: string, filename: string): Promise<AssetCheck> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.thread().postMessage({ id, kind, path, filename } satisfies CheckRequest);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
