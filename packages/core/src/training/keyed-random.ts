/**
 * Training's randomness as pure functions of (seed, purpose, indices): the timesteps and noise of micro-batch j of
 * optimizer step s, the order of epoch e, the template line of entry i. A run resumed from a checkpoint on another
 * machine therefore draws exactly what the uninterrupted run drew, with no generator state to save. (A1111 draws
 * these from torch's and Python's global generators; the oracle records them rather than asking us to reproduce
 * them.)
 */
import { createHash } from 'node:crypto';
import { MT19937 } from '../rng/mt19937.js';
import { TorchCpuGenerator } from '../rng/torch-cpu.js';

/** A 32-bit seed for one purpose and position, derived from the run's seed. */
export function keyedSeed(seed: number, purpose: string, ...indices: number[]): number {
  const digest = createHash('sha256').update(JSON.stringify([seed, purpose, ...indices])).digest();
  return digest.readUInt32LE(0);
}

/** Uniform integers and floats from one keyed stream. */
export class KeyedStream {
  private readonly mt: MT19937;
  constructor(seed: number, purpose: string, ...indices: number[]) {
    this.mt = new MT19937(keyedSeed(seed, purpose, ...indices));
  }
  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.mt.nextU32() >>> 5;
    const lo = this.mt.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
  /** Uniform in [0, 1) (the RandomSource that hypernetwork initialisation takes). */
  uniform(): number {
    return this.random();
  }
  /** Standard normal by Box-Muller. */
  normal(): number {
    const u = 1 - this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.random());
  }
  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.random() * n);
  }
  /** Fisher-Yates shuffle of 0..n-1. */
  permutation(n: number): number[] {
    const out = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.below(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

/** Standard normal float32 values (torch's CPU algorithm) from a keyed seed. */
export function keyedNormals(n: number, seed: number, purpose: string, ...indices: number[]): Float32Array {
  return new TorchCpuGenerator(keyedSeed(seed, purpose, ...indices)).randn(n);
}
