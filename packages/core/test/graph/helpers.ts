/** Shared helpers for graph tests: deterministic data, running a builder graph on the CPU provider. */
import type { GraphBuilder } from '../../src/graph/builder.js';
import { createSession } from '../../src/runtime/session.js';
import { float32, type HostTensor } from '../../src/tensor.js';

/** Small deterministic pseudo-random numbers in [-1, 1) (no Math.random: tests must be repeatable). */
export function seeded(n: number, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

export function rand(shape: readonly number[], seed = 1, scale = 1): HostTensor<'float32'> {
  const n = shape.reduce((a, b) => a * b, 1);
  return float32(shape, seeded(n, seed).map((v) => v * scale));
}

export async function runGraph(g: GraphBuilder, feeds: Record<string, HostTensor>): Promise<Record<string, HostTensor>> {
  const s = await createSession(g.toModel(), { threads: 1 });
  try {
    return await s.run(feeds);
  } finally {
    await s.release();
  }
}

export function values(t: HostTensor | undefined): number[] {
  if (!t) throw new Error('missing tensor');
  if (t.data instanceof BigInt64Array) return Array.from(t.data, Number);
  return Array.from(t.data as ArrayLike<number>);
}

export function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
