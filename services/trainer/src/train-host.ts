import { EngineThreadHost } from '@darkroom/farm';
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

/** The main thread's handle on the training thread (train-thread.ts); it also performs the checkpoints' storage writes. */
export class TrainHost extends EngineThreadHost<HostMessage, ThreadMessage, Pending> {
  constructor(workerData: { provider: 'cpu' | 'cuda'; modelCacheBytes: number; cacheDir: string; fallbackToCpu: boolean }) {
    super(
      new URL('./train-thread.ts', import.meta.url),
      workerData,
      (what, message) => new TrainingFailed(what === 'crashed' ? 'TRAINING_THREAD_CRASHED' : 'TRAINING_THREAD_EXITED', `training ${message}`, true),
      { type: 'shutdown' },
    );
  }

  protected onMessage(m: Exclude<ThreadMessage, { type: 'ready' }>): void {
    switch (m.type) {
      case 'step':
        this.pending.get(m.id)?.handlers.onStep(m);
        return;
      case 'rollback':
        this.pending.get(m.id)?.handlers.onRollback(m);
        return;
      case 'preview':
        this.pending.get(m.id)?.handlers.onPreview(m.step, m.png, m.infotext);
        return;
      case 'checkpoint': {
        const p = this.pending.get(m.id);
        if (!p) return;
        p.handlers.onCheckpoint(m).then(
          () => this.post({ type: 'stored', id: m.id, seq: m.seq }),
          (e: Error) => this.post({ type: 'stored', id: m.id, seq: m.seq, error: e.message }),
        );
        return;
      }
      case 'done':
        this.settle(m.id)?.resolve({ status: m.status, step: m.step, startStep: m.startStep, finalStep: m.finalStep });
        return;
      case 'error':
        this.settle(m.id)?.reject(new TrainingFailed(m.code, m.message, m.retryable));
        return;
    }
  }

  /**
   * Starts one training. `cancel()` and `shutdown()` raise the shared flag the thread reads after every
   * optimizer step; either way the run saves a checkpoint and resolves `stopped`.
   */
  train(request: TrainRequest, handlers: TrainingHandlers): { result: Promise<TrainingOutcome>; cancel: () => void; shutdown: () => void } {
    const flagBuf = new SharedArrayBuffer(4);
    const flag = new Int32Array(flagBuf);
    const result = new Promise<TrainingOutcome>((resolve, reject) => {
      this.start({ resolve, reject, handlers }, (id) => ({ type: 'train', id, request, stopFlag: flagBuf }));
    });
    // A cancel outranks a shutdown: a cancelled job must not go back to the queue.
    return {
      result,
      cancel: () => Atomics.store(flag, 0, STOP_CANCEL),
      shutdown: () => void Atomics.compareExchange(flag, 0, 0, STOP_SHUTDOWN),
    };
  }
}
