import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { embeddedIPv4 } from './embedded-v4.js';

/**
 * Webhooks are delivered only to public addresses, so a job cannot make the farm POST into its own network
 * (Redis, MinIO, cloud metadata at 169.254.169.254). `WEBHOOK_ALLOWLIST` names exceptions: hostnames, IPs or
 * CIDR ranges. The delivery connects to the address that was checked, so DNS rebinding cannot swap it.
 */

function v4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, p) => (acc << 8) + Number(p), 0) >>> 0;
}

function inV4Cidr(ip: string, cidr: string): boolean {
  const [base, bitsRaw] = cidr.split('/');
  const bits = Number(bitsRaw ?? 32);
  if (bits === 0) return true;
  const mask = (~0 << (32 - bits)) >>> 0;
  return (v4ToInt(ip) & mask) === (v4ToInt(base!) & mask);
}

/** Expands an IPv6 address to 8 16-bit groups. */
function v6Groups(ip: string): number[] {
  let s = ip.toLowerCase();
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  // An embedded dotted IPv4 tail becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = v4ToInt(v4[1]!);
    s = s.slice(0, -v4[1]!.length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = s.includes('::') ? 8 - h.length - t.length : 0;
  return [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16));
}

function inV6Prefix(groups: number[], prefix: string, bits: number): boolean {
  const p = v6Groups(prefix);
  for (let i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    const take = Math.min(16, bits);
    const mask = (0xffff << (16 - take)) & 0xffff;
    if ((groups[i]! & mask) !== (p[i]! & mask)) return false;
  }
  return true;
}

const PRIVATE_V4 = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24',
  '192.0.2.0/24', '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24',
  '224.0.0.0/4', '240.0.0.0/4',
];

/** True for loopback, private, link-local (cloud metadata), CGNAT, documentation, multicast and reserved addresses. */
export function isPrivateAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 4) return PRIVATE_V4.some((c) => inV4Cidr(ip, c));
  if (family !== 6) return true;
  const g = v6Groups(ip);
  if (g.every((x) => x === 0)) return true; // ::
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return true; // ::1
  // An address that embeds an IPv4 address reaches it: the IPv4 inside decides (any private one refuses).
  const inner = embeddedIPv4(g);
  if (inner.some((v4) => isPrivateAddress(v4))) return true;
  // Teredo (2001::/32) sits inside 2001::/23, which stays refused whatever it embeds.
  return [['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64], ['2001::', 23]]
    .some(([p, b]) => inV6Prefix(g, p as string, b as number));
}

export function isAllowlisted(hostname: string, ip: string | undefined, allowlist: readonly string[]): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  for (const entry of allowlist.map((e) => e.toLowerCase())) {
    if (entry === host) return true;
    if (ip === undefined) continue;
    if (entry === ip) return true;
    if (entry.includes('/') && isIP(ip) === 4 && isIP(entry.split('/')[0]!) === 4 && inV4Cidr(ip, entry)) return true;
    if (entry.includes('/') && isIP(ip) === 6 && isIP(entry.split('/')[0]!) === 6) {
      if (inV6Prefix(v6Groups(ip), entry.split('/')[0]!, Number(entry.split('/')[1]))) return true;
    }
  }
  return false;
}

export class SsrfError extends Error {
  readonly code = 'WEBHOOK_ADDRESS_FORBIDDEN';
  constructor(message: string) {
    super(message);
    this.name = 'SsrfError';
  }
}

/** Resolves the host and returns one address that may be contacted, or throws SsrfError. */
export async function resolveDeliverableAddress(
  url: URL,
  allowlist: readonly string[],
): Promise<{ address: string; family: 4 | 6 }> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SsrfError(`webhook scheme ${url.protocol} is not http(s)`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addrs = isIP(host) ? [{ address: host, family: isIP(host) }] : await lookup(host, { all: true, verbatim: true });
  if (addrs.length === 0) throw new SsrfError(`${host} does not resolve`);
  // Every address must pass: otherwise a name with one public and one private record could be steered inside.
  for (const a of addrs) {
    if (isPrivateAddress(a.address) && !isAllowlisted(host, a.address, allowlist)) {
      throw new SsrfError(`${host} resolves to ${a.address}, a private or reserved address; add it to WEBHOOK_ALLOWLIST to allow it`);
    }
  }
  return { address: addrs[0]!.address, family: addrs[0]!.family === 6 ? 6 : 4 };
}

/** Cheap check at submission time, before any DNS: literal private IPs are refused right away. */
export function checkWebhookUrlSyntax(raw: string, allowlist: readonly string[]): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be http or https';
  if (url.username || url.password) return 'must not carry credentials';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' && !isAllowlisted(host, undefined, allowlist)) return 'localhost is not a public address';
  if (isIP(host) && isPrivateAddress(host) && !isAllowlisted(host, host, allowlist)) {
    return `${host} is a private or reserved address (WEBHOOK_ALLOWLIST can allow it)`;
  }
  return null;
}
