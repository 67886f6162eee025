import type { Redis } from 'ioredis';
import type { SharedConfig } from './config.js';
import type { FarmKeys } from './keys.js';
import { generateWebhookSecret } from './webhooks/signing.js';

/**
 * The master webhook secret: WEBHOOK_SECRET when set; otherwise one generated on first use and kept in Redis,
 * so the API (which tells tenants their secret) and the workers (which sign) agree without configuration.
 */
export async function webhookMasterSecret(cfg: Pick<SharedConfig, 'webhookSecret'>, redis: Redis, keys: FarmKeys): Promise<string> {
  if (cfg.webhookSecret) return cfg.webhookSecret;
  await redis.set(keys.webhookMaster, generateWebhookSecret(), 'NX');
  return (await redis.get(keys.webhookMaster))!;
}
