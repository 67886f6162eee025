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
 */
export async function deliverWebhook(opts: {
  url: string;
  secret: string;
  messageId: string;
  body: string;
  allowlist: readonly string[];
  timeoutMs: number;
}): Promise<DeliveryResult> {
  const url = new URL(opts.url);
  const target = await resolveDeliverableAddress(url, opts.allowlist);
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
  const started = performance.now();
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise<DeliveryResult>((resolve, reject) => {
    const req = mod.request(url, { method: 'POST', headers, lookup: pinned, timeout: opts.timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const durationMs = Math.round(performance.now() - started);
        if (status >= 200 && status < 300) resolve({ status, durationMs });
        else reject(new DeliveryError(`receiver answered ${status}`, status, false));
      });
    });
    req.on('timeout', () => req.destroy(new DeliveryError(`no answer within ${opts.timeoutMs} ms`, null, false)));
    req.on('error', (e) => reject(e instanceof DeliveryError ? e : new DeliveryError(e.message, null, false)));
    req.end(opts.body);
  });
}
