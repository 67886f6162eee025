import type { Worker } from 'node:worker_threads';
import { startTsThread } from '@darkroom/farm';
import {
  STOP_CANCEL, STOP_SHUTDOWN, type CheckpointMessage, type HostMessage, type RollbackMessage, type StepMessage, type ThreadMessage,
  type TrainRequest,
} from './train-protocol.js';

export interface TrainingOutcome {
  status: 'completed' | 'stopped';
  step: number;
  startStep: number;
  finalStep: number;
}

export class TrainingFailed extends Error {
  constructor(readonly code: string, message: string, readonly retryable: boolean) {
    super(message);
    this.name = 'TrainingFailed';
  }
}

/** What the main thread does with a running training's reports. `onCheckpoint` resolves once the checkpoint is stored. */
export interface TrainingHandlers {
  onStep(m: StepMessage): void;
  onRollback(m: RollbackMessage): void;
  onPreview(step: number, png: Uint8Array, infotext: string): void;
  onCheckpoint(m: CheckpointMessage): Promise<void>;
}

interface Pending {
  resolve: (o: TrainingOutcome) => void;
  reject: (e: Error) => void;
  handlers: TrainingHandlers;
}

/**
 * The main thread's handle on the training thread. onnxruntime's `run()` blocks the thread that calls it, so
 * training runs in train-thread.ts and this side stays free for lock renewal, cancel messages, health checks,
 * SIGTERM and the storage writes of checkpoints.
 */
export class TrainHost {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly readyPromise: Promise<string>;
  private exited = false;
  private closing = false;
  /** Called when the training thread dies on its own (not through close()). */
  onUnexpectedExit: ((code: number) => void) | null = null;

  constructor(workerData: { provider: 'cpu' | 'cuda'; modelCacheBytes: number; cacheDir: string; fallbackToCpu: boolean }) {
    this.worker = startTsThread(new URL('./train-thread.ts', import.meta.url), workerData);
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
    this.worker.on('error', (e) => this.failAll(new TrainingFailed('TRAINING_THREAD_CRASHED', e.message, true)));
    this.worker.on('exit', (code) => {
      this.exited = true;
      this.failAll(new TrainingFailed('TRAINING_THREAD_EXITED', `training thread exited with code ${code}`, true));
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

  private post(m: HostMessage): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: ThreadMessage): void {
    if (m.type === 'ready') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'step':
        p.handlers.onStep(m);
        return;
      case 'rollback':
        p.handlers.onRollback(m);
        return;
      case 'preview':
        p.handlers.onPreview(m.step, m.png, m.infotext);
        return;
      case 'checkpoint':
        p.handlers.onCheckpoint(m).then(
          () => this.post({ type: 'stored', id: m.id, seq: m.seq }),
          (e: Error) => this.post({ type: 'stored', id: m.id, seq: m.seq, error: e.message }),
        );
        return;
      case 'done':
        this.pending.delete(m.id);
        p.resolve({ status: m.status, step: m.step, startStep: m.startStep, finalStep: m.finalStep });
        return;
      case 'error':
        this.pending.delete(m.id);
        p.reject(new TrainingFailed(m.code, m.message, m.retryable));
        return;
    }
  }

  /**
   * Starts one training. `cancel()` and `shutdown()` raise the shared flag the thread reads after every
   * optimizer step; either way the run saves a checkpoint and resolves `stopped`.
   */
  train(request: TrainRequest, handlers: TrainingHandlers): { result: Promise<TrainingOutcome>; cancel: () => void; shutdown: () => void } {
    const id = this.nextId++;
    const flagBuf = new SharedArrayBuffer(4);
    const flag = new Int32Array(flagBuf);
    const result = new Promise<TrainingOutcome>((resolve, reject) => {
      if (this.exited) {
        reject(new TrainingFailed('TRAINING_THREAD_EXITED', 'training thread is not running', true));
        return;
      }
      this.pending.set(id, { resolve, reject, handlers });
      this.post({ type: 'train', id, request, stopFlag: flagBuf });
    });
    // A cancel outranks a shutdown: a cancelled job must not go back to the queue.
    return {
      result,
      cancel: () => Atomics.store(flag, 0, STOP_CANCEL),
      shutdown: () => void Atomics.compareExchange(flag, 0, 0, STOP_SHUTDOWN),
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.exited) return;
    this.post({ type: 'shutdown' });
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    await new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    clearTimeout(timer);
  }
}
