import { createHash } from 'node:crypto';
import { ulid } from 'ulid';

/** Job ids are ULIDs: sortable by submission time, safe in Redis keys and URLs. */
export function newJobId(): string {
  return ulid();
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * An `Idempotency-Key` maps to a deterministic, ULID-shaped id (26 Crockford base32 characters from a
 * SHA-256 of tenant and key), so a retried POST names the same BullMQ job and BullMQ refuses to add it twice.
 * The same key from another tenant gives another id. The leading character is kept below '8' as a ULID's is.
 */
export function idempotentJobId(tenant: string, key: string): string {
  const digest = createHash('sha256').update(`darkroom-idempotency\0${tenant}\0${key}`).digest();
  let bits = 0n;
  for (const b of digest.subarray(0, 17)) bits = (bits << 8n) | BigInt(b);
  let out = '';
  for (let i = 0; i < 26; i++) {
    out = CROCKFORD[Number(bits & 31n)]! + out;
    bits >>= 5n;
  }
  return (CROCKFORD[CROCKFORD.indexOf(out[0]!) % 8]!) + out.slice(1);
}

const ULID_RE = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;

export function isJobId(s: string): boolean {
  return ULID_RE.test(s);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
