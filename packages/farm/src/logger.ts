import { pino, type Logger } from 'pino';

/** One pino logger per process; child loggers carry `jobId` so every line of a job can be grepped. */
export function createLogger(name: string, level = 'info'): Logger {
  return pino({ name, level, base: { service: name } });
}

export type { Logger };
