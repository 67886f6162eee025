/**
 * Time spent inside onnxruntime's own `InferenceSession.run` (its JS wrapper and the native run), measured by
 * wrapping the method on the session prototype. Whatever calls it (our EngineSession included) is timed without
 * changing that code, so a step's wall time minus this is the time our side adds.
 */
import ort from 'onnxruntime-node';
import { GraphBuilder } from '../../packages/core/src/graph/builder.js';
import { nowMs } from './stats.js';

export class OrtRunTimer {
  totalMs = 0;
  calls = 0;

  reset(): void {
    this.totalMs = 0;
    this.calls = 0;
  }

  /** Milliseconds inside run() while `fn` executes. */
  async measure<T>(fn: () => Promise<T>): Promise<{ value: T; ortMs: number; wallMs: number }> {
    const before = this.totalMs;
    const t0 = nowMs();
    const value = await fn();
    return { value, ortMs: this.totalMs - before, wallMs: nowMs() - t0 };
  }
}

type RunFn = (this: ort.InferenceSession, ...args: unknown[]) => Promise<ort.InferenceSession.ReturnType>;

let installed: OrtRunTimer | undefined;

/** Installs the timer once per process (the prototype is shared by every session) and returns it. */
export async function ortRunTimer(): Promise<OrtRunTimer> {
  if (installed) return installed;
  const timer = new OrtRunTimer();
  // The factory type exposes no prototype; a tiny session gives us the class every session shares.
  const g = new GraphBuilder('probe');
  g.output(g.input('x', 'float32', [1]), 'y');
  const probe = await ort.InferenceSession.create(g.toModel().bytes);
  const proto = Object.getPrototypeOf(probe) as { run: RunFn };
  await probe.release();
  const original = proto.run;
  proto.run = async function timedRun(this: ort.InferenceSession, ...args: unknown[]) {
    const t0 = nowMs();
    try {
      return await original.apply(this, args);
    } finally {
      timer.totalMs += nowMs() - t0;
      timer.calls++;
    }
  };
  installed = timer;
  return timer;
}
