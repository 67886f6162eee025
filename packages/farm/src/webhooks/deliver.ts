import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { resolveDeliverableAddress } from './ssrf.js';
import { signWebhook } from './signing.js';

export interface DeliveryResult {
  status: number;
  durationMs: number;
}

export class DeliveryError extends Error {
  constructor(message: string, readonly status: number | null, readonly permanent: boolean) {
    super(message);
    this.name = 'DeliveryError';
  }
}

/**
 * POSTs one signed message. Redirects are not followed (a 3xx is a failure), and the socket connects to the
 * address the SSRF check approved.
 *
 * `timeoutMs` is a total deadline for the attempt: name resolution, connecting, sending and the receiver's status
 * line and headers. An idle timeout alone let a receiver that sends one byte every few seconds hold a delivery
 * slot for ever. The answer is judged on its status; the body is never read, so a slow body costs nothing.
 */
export async function deliverWebhook(opts: {
  url: string;
  secret: string;
  messageId: string;
  body: string;
  allowlist: readonly string[];
  timeoutMs: number;
}): Promise<DeliveryResult> {
  const started = performance.now();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), opts.timeoutMs);
  const late = () => new DeliveryError(`no complete answer within ${opts.timeoutMs} ms (WEBHOOK_TIMEOUT_MS)`, null, false);
  try {
    const url = new URL(opts.url);
    const expired = new Promise<never>((_resolve, reject) => deadline.signal.addEventListener('abort', () => reject(late()), { once: true }));
    // Also rejects when the deadline passes later, during the request, where nobody races it any more.
    expired.catch(() => undefined);
    const target = await Promise.race([resolveDeliverableAddress(url, opts.allowlist), expired]);
    const pinned: LookupFunction = (_host, options, cb) => {
      if (typeof options === 'object' && options !== null && 'all' in options && options.all) {
        (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address: target.address, family: target.family }]);
      } else cb(null, target.address, target.family);
    };
    const headers = {
      ...signWebhook(opts.secret, opts.messageId, opts.body),
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(opts.body)),
      'user-agent': 'darkroom-webhooks/1',
    };
    const mod = url.protocol === 'https:' ? https : http;
    return await new Promise<DeliveryResult>((resolve, reject) => {
      const req = mod.request(url, { method: 'POST', headers, lookup: pinned, signal: deadline.signal }, (res) => {
        const status = res.statusCode ?? 0;
        const durationMs = Math.round(performance.now() - started);
        // Done with this connection: whatever body follows is not read.
        res.destroy();
        req.destroy();
        if (status >= 200 && status < 300) resolve({ status, durationMs });
        else reject(new DeliveryError(`receiver answered ${status}`, status, false));
      });
      req.on('error', (e) => {
        if (deadline.signal.aborted) reject(late());
        else reject(e instanceof DeliveryError ? e : new DeliveryError(e.message, null, false));
      });
      req.end(opts.body);
    });
  } finally {
    clearTimeout(timer);
  }
}
