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
