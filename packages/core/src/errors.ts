/**
 * Every error the engine throws on purpose carries a stable `code`, so services can map it to an HTTP status
 * and clients can branch on it without parsing messages.
 */
export class DarkroomError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'DarkroomError';
  }
}

export function isDarkroomError(e: unknown, code?: string): e is DarkroomError {
  return e instanceof DarkroomError && (code === undefined || e.code === code);
}

/**
 * The one cancellation: whatever notices an aborted signal (a sampler between steps, a pipeline between stages)
 * throws DarkroomError 'CANCELLED', so every caller tells a cancel from a failure with isCancelled. A signal
 * aborted with an error of the caller's own (the CLI's "interrupted", a typed refusal) throws that error instead.
 */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') throw reason;
  throw new DarkroomError('CANCELLED', 'the job was cancelled', { reason: reason instanceof Error ? reason.message : String(reason) });
}

export function isCancelled(e: unknown): boolean {
  return isDarkroomError(e, 'CANCELLED');
}

/** An error as a thread posts it to its host: data, not an Error object (which structured clone strips of its code). */
export interface ThreadFailure {
  readonly code: string;
  readonly message: string;
  /** False for a typed refusal (a retry would refuse again); true for anything else (out of memory, a lost device). */
  readonly retryable: boolean;
}

/** The failure a thread reports for `e`: a DarkroomError keeps its code; anything else is `fallbackCode`, retryable. */
export function threadFailure(e: unknown, fallbackCode: string): ThreadFailure {
  if (e instanceof DarkroomError) return { code: e.code, message: e.message, retryable: false };
  return { code: fallbackCode, message: e instanceof Error ? e.message : String(e), retryable: true };
}
