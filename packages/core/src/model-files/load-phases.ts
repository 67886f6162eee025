/**
 * The phases of bringing a model up, timed apart so a slow cold start can be pinned on one of them: reading the
 * checkpoint's header, hashing the file, reading tensors, converting them to float32, building a graph,
 * serialising it, writing it to the compile cache, opening the onnxruntime session, and running it.
 */

export type LoadPhase = 'open' | 'hash' | 'read' | 'convert' | 'build' | 'serialize' | 'write' | 'session' | 'run';

export interface LoadPhaseTiming {
  readonly phase: LoadPhase;
  /** `checkpoint`, or the component the work was for (text, unet, vae_decoder, vae_encoder, unet_part0, ...). */
  readonly component: string;
  readonly ms: number;
}

export type LoadPhaseListener = (timing: LoadPhaseTiming) => void;

/** Runs `fn`, telling `listener` (if any) how long it took. */
export function timePhase<T>(listener: LoadPhaseListener | undefined, phase: LoadPhase, component: string, fn: () => T): T {
  if (!listener) return fn();
  const t0 = performance.now();
  const out = fn();
  listener({ phase, component, ms: performance.now() - t0 });
  return out;
}

/** `timePhase` for asynchronous work: the time until its promise settles. */
export async function timePhaseAsync<T>(
  listener: LoadPhaseListener | undefined,
  phase: LoadPhase,
  component: string,
  fn: () => Promise<T>,
): Promise<T> {
  if (!listener) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    listener({ phase, component, ms: performance.now() - t0 });
  }
}
