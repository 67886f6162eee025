import { Redis, type RedisOptions } from 'ioredis';

/**
 * BullMQ needs `maxRetriesPerRequest: null` on connections that block (workers, QueueEvents); the API's
 * plain connection keeps ioredis' default so a Redis outage fails requests instead of hanging them.
 */
export function connectRedis(url: string, opts: { blocking?: boolean; name?: string } = {}): Redis {
  const options: RedisOptions = {
    lazyConnect: false,
    connectionName: opts.name,
    ...(opts.blocking ? { maxRetriesPerRequest: null } : { maxRetriesPerRequest: 3 }),
  };
  return new Redis(url, options);
}

export type { Redis };
