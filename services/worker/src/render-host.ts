import type { ComputeDType } from '@darkroom/core/models/layers.js';
import type { MemoryMode } from '@darkroom/core/models/memory-mode.js';
import { EngineThreadHost } from '@darkroom/farm';
import {
  CANCEL_REQUESTED, CANCEL_RUN, INTERRUPT_REQUESTED, SKIP_REQUESTED, type HostMessage, type RenderOutput, type RenderRequest, type ThreadMessage,
} from './render-protocol.js';

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

/** The main thread's handle on the render thread (render.ts). */
export class RenderHost extends EngineThreadHost<HostMessage, ThreadMessage, Pending> {
  /** Called after every render with the checkpoint paths the engine holds loaded ('' = the built-in model), most recent first. */
  onModels: ((checkpoints: string[]) => void) | null = null;

  constructor(workerData: { provider: 'cpu' | 'cuda'; modelCacheBytes: number; cacheDir: string; fallbackToCpu: boolean; previewEvery: number; attention: string; memoryMode: MemoryMode; weightsDtype: ComputeDType; maxInputPixels: number; intraOpThreads: number | null }) {
    super(
      new URL('./render.ts', import.meta.url),
      workerData,
      (what, message) => new RenderFailed(what === 'crashed' ? 'RENDER_THREAD_CRASHED' : 'RENDER_THREAD_EXITED', `render ${message}`, true),
      { type: 'shutdown' },
    );
  }

  protected onMessage(m: Exclude<ThreadMessage, { type: 'ready' }>): void {
    switch (m.type) {
      case 'models':
        this.onModels?.(m.checkpoints);
        return;
      case 'step':
        this.pending.get(m.id)?.onStep(m);
        return;
      case 'done':
        this.settle(m.id)?.resolve(m.output);
        return;
      case 'cancelled':
        this.settle(m.id)?.reject(new RenderCancelled(m.stepAtCancel, m.lastStep));
        return;
      case 'error':
        this.settle(m.id)?.reject(new RenderFailed(m.code, m.message, m.retryable));
        return;
    }
  }

  /**
   * Runs one render; `cancel()` on the returned handle raises the shared flag the thread checks every step, and
   * `stop()` asks for A1111's interrupt or skip through the same flag (a cancel already raised wins).
   */
  render(request: RenderRequest, onStep: (s: StepInfo) => void): { result: Promise<RenderOutput>; cancel: () => void; stop: (kind: 'interrupt' | 'skip') => void } {
    const flagBuf = new SharedArrayBuffer(4);
    const flag = new Int32Array(flagBuf);
    const result = new Promise<RenderOutput>((resolve, reject) => {
      this.start({ resolve, reject, onStep }, (id) => ({ type: 'render', id, request, cancelFlag: flagBuf }));
    });
    return {
      result,
      cancel: () => Atomics.store(flag, 0, CANCEL_REQUESTED),
      stop: (kind) => {
        const want = kind === 'interrupt' ? INTERRUPT_REQUESTED : SKIP_REQUESTED;
        // Interrupt may replace a pending skip; neither replaces a cancel.
        if (Atomics.compareExchange(flag, 0, CANCEL_RUN, want) === SKIP_REQUESTED && want === INTERRUPT_REQUESTED) {
          Atomics.compareExchange(flag, 0, SKIP_REQUESTED, INTERRUPT_REQUESTED);
        }
      },
    };
  }
}
