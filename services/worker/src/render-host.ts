import type { Worker } from 'node:worker_threads';
import { startTsThread } from '@darkroom/farm';
import { CANCEL_REQUESTED, type HostMessage, type RenderOutput, type RenderRequest, type ThreadMessage } from './render-protocol.js';

export interface StepInfo {
  step: number;
  steps: number;
  iteration: number;
  iterations: number;
  preview?: Uint8Array;
}

export class RenderCancelled extends Error {
  constructor(readonly stepAtCancel: number, readonly lastStep: number) {
    super('render cancelled');
    this.name = 'RenderCancelled';
  }
}

export class RenderFailed extends Error {
  constructor(readonly code: string, message: string, readonly retryable: boolean) {
    super(message);
    this.name = 'RenderFailed';
  }
}

interface Pending {
  resolve: (o: RenderOutput) => void;
  reject: (e: Error) => void;
  onStep: (s: StepInfo) => void;
}

/**
 * The main thread's handle on the render thread. onnxruntime's `run()` blocks whatever thread calls it, so the
 * engine lives in render.ts on its own thread and this side stays free for lock renewal, cancel messages,
 * health checks and progress.
 */
export class RenderHost {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readyPromise: Promise<string>;
  private exited = false;
  private closing = false;
  /** Called when the render thread dies on its own (not through close()). */
  onUnexpectedExit: ((code: number) => void) | null = null;

  constructor(workerData: { provider: 'cpu' | 'cuda'; modelCacheBytes: number; cacheDir: string; fallbackToCpu: boolean; previewEvery: number }) {
    this.worker = startTsThread(new URL('./render.ts', import.meta.url), workerData);
    this.readyPromise = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      const onReady = (m: ThreadMessage) => {
        if (m.type === 'ready') {
          this.worker.off('message', onReady);
          resolve(m.engine);
        }
      };
      this.worker.on('message', onReady);
    });
    this.worker.on('message', (m: ThreadMessage) => this.onMessage(m));
    this.worker.on('error', (e) => this.failAll(new RenderFailed('RENDER_THREAD_CRASHED', e.message, true)));
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.failAll(new RenderFailed('RENDER_THREAD_EXITED', `render thread exited with code ${code}`, true));
      if (!this.closing) this.onUnexpectedExit?.(code);
    });
  }

  ready(): Promise<string> {
    return this.readyPromise;
  }

  get alive(): boolean {
    return !this.exited;
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private onMessage(m: ThreadMessage): void {
    if (m.type === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'step':
        p.onStep(m);
        return;
      case 'done':
        this.pending.delete(m.id);
        p.resolve(m.output);
        return;
      case 'cancelled':
        this.pending.delete(m.id);
        p.reject(new RenderCancelled(m.stepAtCancel, m.lastStep));
        return;
      case 'error':
        this.pending.delete(m.id);
        p.reject(new RenderFailed(m.code, m.message, m.retryable));
        return;
    }
  }

  /** Runs one render; `cancel()` on the returned handle raises the shared flag the thread checks every step. */
  render(request: RenderRequest, onStep: (s: StepInfo) => void): { result: Promise<RenderOutput>; cancel: () => void } {
    const id = this.nextId++;
    const flagBuf = new SharedArrayBuffer(4);
    const flag = new Int32Array(flagBuf);
    const result = new Promise<RenderOutput>((resolve, reject) => {
      if (this.exited) {
        reject(new RenderFailed('RENDER_THREAD_EXITED', 'render thread is not running', true));
        return;
      }
      this.pending.set(id, { resolve, reject, onStep });
      const msg: HostMessage = { type: 'render', id, request, cancelFlag: flagBuf };
      this.worker.postMessage(msg);
    });
    return { result, cancel: () => Atomics.store(flag, 0, CANCEL_REQUESTED) };
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.exited) return;
    const msg: HostMessage = { type: 'shutdown' };
    this.worker.postMessage(msg);
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    clearTimeout(timer);
  }
}
