/**
 * IPv6 forms that carry an IPv4 address. A packet to any of them can end up at that IPv4 address (through a
 * translator, a tunnel relay or the host's own stack), so the address check must judge the IPv4 inside.
 */

/** `a.b.c.d` from two 16-bit groups. */
function dotted(hi: number, lo: number): string {
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

function bytesOf(groups: readonly number[]): number[] {
  return groups.flatMap((g) => [g >> 8, g & 255]);
}

function allZero(values: readonly number[]): boolean {
  return values.every((v) => v === 0);
}

/**
 * The IPv4 addresses a local-use NAT64 prefix (64:ff9b:1::/48, RFC 8215) may embed. The network picks the
 * prefix length (/48, /56, /64 or /96, RFC 6052 section 2.2) and it cannot be known from outside, so every
 * placement whose reserved bits (bits 64-71, and the suffix) are zero is a candidate.
 */
function localNat64Candidates(b: readonly number[]): string[] {
  const out: string[] = [];
  const v4 = (four: readonly number[]): string => four.join('.');
  if (b[8] === 0 && allZero(b.slice(11))) out.push(v4([b[6]!, b[7]!, b[9]!, b[10]!]));
  if (b[8] === 0 && allZero(b.slice(12))) out.push(v4([b[7]!, b[9]!, b[10]!, b[11]!]));
  if (b[8] === 0 && allZero(b.slice(13))) out.push(v4([b[9]!, b[10]!, b[11]!, b[12]!]));
  out.push(v4(b.slice(12)));
  return out;
}

/** Every IPv4 address the 8 groups of an IPv6 address embed; empty for a plain IPv6 address. */
export function embeddedIPv4(g: readonly number[]): string[] {
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [number, number, number, number, number, number, number, number];
  // ::a.b.c.d (IPv4-compatible, deprecated but still routed by some stacks) and ::ffff:a.b.c.d (IPv4-mapped).
  if (allZero([g0, g1, g2, g3, g4]) && (g5 === 0 || g5 === 0xffff)) return [dotted(g6, g7)];
  // ::ffff:0:a.b.c.d, the SIIT IPv4-translated form (RFC 7915).
  if (allZero([g0, g1, g2, g3]) && g4 === 0xffff && g5 === 0) return [dotted(g6, g7)];
  // 64:ff9b::/96, the well-known NAT64 prefix (RFC 6052).
  if (g0 === 0x64 && g1 === 0xff9b && allZero([g2, g3, g4, g5])) return [dotted(g6, g7)];
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return localNat64Candidates(bytesOf(g));
  // 2002:AABB:CCDD::/48, 6to4 (RFC 3056): the relay forwards to the IPv4 address in groups 1-2.
  if (g0 === 0x2002) return [dotted(g1, g2)];
  // 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, Teredo (RFC 4380): the server, and the client address stored inverted.
  if (g0 === 0x2001 && g1 === 0) return [dotted(g2, g3), dotted(~g6 & 0xffff, ~g7 & 0xffff)];
  return [];
}
