/**
 * The main thread's handle on an engine thread (the render thread of a worker, the training thread of a
 * trainer). onnxruntime's `run()` blocks whatever thread calls it, so the engine lives on its own thread and the
 * main thread stays free for lock renewal, cancel messages, health checks, SIGTERM and storage writes. This class
 * owns what both have in common: starting the thread, its `ready` handshake, the requests in flight (each failed
 * with a retryable error if the thread dies), and an orderly close; a subclass routes its own messages.
 */
import type { Worker } from 'node:worker_threads';
import { startTsThread } from './ts-thread.js';

/** Every engine thread first says it is ready, naming its engine (provider and version). */
export interface ReadyMessage {
  readonly type: 'ready';
  readonly engine: string;
}

/** What the thread dying does to a request in flight: `code` is the subclass's own (e.g. RENDER_THREAD_EXITED). */
export type ThreadLossError = (what: 'crashed' | 'exited', message: string) => Error;

export abstract class EngineThreadHost<HostMessage, ThreadMessage extends { readonly type: string }, Pending extends { reject(e: Error): void }> {
  protected readonly worker: Worker;
  protected readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  private readonly readyPromise: Promise<string>;
  private exited = false;
  private closing = false;
  /** Called when the thread dies on its own (not through close()). */
  onUnexpectedExit: ((code: number) => void) | null = null;

  constructor(
    entry: URL,
    workerData: unknown,
    private readonly lost: ThreadLossError,
    private readonly shutdownMessage: HostMessage,
  ) {
    this.worker = startTsThread(entry, workerData);
    this.readyPromise = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      const onReady = (m: ThreadMessage | ReadyMessage): void => {
        if (m.type === 'ready') {
          this.worker.off('message', onReady);
          resolve((m as ReadyMessage).engine);
        }
      };
      this.worker.on('message', onReady);
    });
    this.worker.on('message', (m: ThreadMessage | ReadyMessage) => {
      if (m.type !== 'ready') this.onMessage(m as Exclude<ThreadMessage, ReadyMessage>);
    });
    this.worker.on('error', (e) => this.failAll(this.lost('crashed', e.message)));
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.failAll(this.lost('exited', `thread exited with code ${code}`));
      if (!this.closing) this.onUnexpectedExit?.(code);
    });
  }

  /** Resolves with the engine's description once the thread has loaded it. */
  ready(): Promise<string> {
    return this.readyPromise;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Routes one message (never `ready`) of a request in flight. */
  protected abstract onMessage(m: Exclude<ThreadMessage, ReadyMessage>): void;

  protected post(m: HostMessage): void {
    this.worker.postMessage(m);
  }

  /** Registers a request and posts it, or fails it at once when the thread is gone. */
  protected start(pending: Pending, message: (id: number) => HostMessage): void {
    if (this.exited) {
      pending.reject(this.lost('exited', 'thread is not running'));
      return;
    }
    const id = this.nextRequestId++;
    this.pending.set(id, pending);
    this.post(message(id));
  }

  /** The request `id` is finished: forget it and return it (undefined when it was not in flight). */
  protected settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.exited) return;
    this.post(this.shutdownMessage);
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    clearTimeout(timer);
  }
}
