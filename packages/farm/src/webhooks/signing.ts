import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Standard Webhooks (https://www.standardwebhooks.com): the signed content is `${id}.${timestamp}.${body}`,
 * the key is the base64 part of a `whsec_...` secret, and `webhook-signature` holds space-separated `v1,<base64>`
 * signatures (several during a secret rotation).
 */
export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

function secretBytes(secret: string): Buffer {
  if (!secret.startsWith('whsec_')) throw new Error('webhook secrets start with "whsec_"');
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  if (key.length < 16) throw new Error('webhook secret must hold at least 16 bytes');
  return key;
}

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** Each tenant gets its own secret, derived from the farm's master secret so no table of secrets is needed. */
export function tenantWebhookSecret(masterSecret: string, tenant: string): string {
  const mac = createHmac('sha256', secretBytes(masterSecret)).update(`darkroom-webhook-tenant\0${tenant}`).digest();
  return `whsec_${mac.toString('base64')}`;
}

export function signatureFor(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secretBytes(secret)).update(`${id}.${timestamp}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export function signWebhook(secret: string, id: string, body: string, now = Date.now()): SignedHeaders {
  const timestamp = Math.floor(now / 1000);
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signatureFor(secret, id, timestamp, body) };
}

export class WebhookVerificationError extends Error {
  constructor(readonly code: 'MISSING_HEADERS' | 'TIMESTAMP_OUT_OF_RANGE' | 'BAD_SIGNATURE', message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

/**
 * What a receiver runs: checks the headers against the raw body and rejects timestamps more than
 * `toleranceS` away (replay protection). Throws WebhookVerificationError; returns the parsed body.
 */
export function verifyWebhook(
  secret: string,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  rawBody: string,
  opts: { toleranceS?: number; now?: number } = {},
): unknown {
  const get = (name: string): string | undefined => {
    const v = headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = get('webhook-id');
  const ts = get('webhook-timestamp');
  const sigs = get('webhook-signature');
  if (!id || !ts || !sigs) throw new WebhookVerificationError('MISSING_HEADERS', 'webhook-id, webhook-timestamp and webhook-signature are required');
  const timestamp = Number(ts);
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  if (!Number.isInteger(timestamp) || Math.abs(now - timestamp) > (opts.toleranceS ?? 300)) {
    throw new WebhookVerificationError('TIMESTAMP_OUT_OF_RANGE', 'webhook-timestamp is too far from now');
  }
  const expected = Buffer.from(signatureFor(secret, id, timestamp, rawBody).slice(3), 'base64');
  for (const candidate of sigs.split(' ')) {
    const [version, value] = candidate.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const got = Buffer.from(value, 'base64');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return JSON.parse(rawBody);
  }
  throw new WebhookVerificationError('BAD_SIGNATURE', 'no webhook-signature matches the body');
}
