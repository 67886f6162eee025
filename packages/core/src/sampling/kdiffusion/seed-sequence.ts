/**
 * numpy.random.SeedSequence (numpy >= 1.19): the hash that turns torchsde's (entropy, spawn key) into the
 * uint32 seeds of each Brownian-tree node. uint32 arithmetic throughout (Math.imul, >>> 0).
 */
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;

/** A non-negative integer as little-endian uint32 words (0 is one word). */
function uint32Words(n: number): number[] {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`SeedSequence entropy must be a non-negative integer, got ${n}`);
  if (n === 0) return [0];
  const out: number[] = [];
  while (n > 0) {
    out.push(n % 0x100000000);
    n = Math.floor(n / 0x100000000);
  }
  return out;
}

export class SeedSequence {
  private readonly pool: Uint32Array;

  constructor(entropy: number, spawnKey: readonly number[] = [], poolSize = 4) {
    let run = uint32Words(entropy);
    const spawn = spawnKey.flatMap(uint32Words);
    // numpy pads the run entropy to the pool size when a spawn key follows (gh-16539).
    if (spawn.length > 0 && run.length < poolSize) run = [...run, ...new Array<number>(poolSize - run.length).fill(0)];
    const entropyWords = [...run, ...spawn];
    const pool = new Uint32Array(poolSize);
    let hashConst = INIT_A;
    const hashmix = (value: number): number => {
      value = (value ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_A) >>> 0;
      value = Math.imul(value, hashConst) >>> 0;
      return (value ^ (value >>> 16)) >>> 0;
    };
    const mix = (x: number, y: number): number => {
      const r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
      return (r ^ (r >>> 16)) >>> 0;
    };
    for (let i = 0; i < poolSize; i++) pool[i] = hashmix(i < entropyWords.length ? entropyWords[i]! : 0);
    for (let src = 0; src < poolSize; src++) {
      for (let dst = 0; dst < poolSize; dst++) if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
    for (let src = poolSize; src < entropyWords.length; src++) {
      for (let dst = 0; dst < poolSize; dst++) pool[dst] = mix(pool[dst]!, hashmix(entropyWords[src]!));
    }
    this.pool = pool;
  }

  generateState(nWords: number): number[] {
    let hashConst = INIT_B;
    const out: number[] = [];
    for (let i = 0; i < nWords; i++) {
      let v = (this.pool[i % this.pool.length]! ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_B) >>> 0;
      v = Math.imul(v, hashConst) >>> 0;
      out.push((v ^ (v >>> 16)) >>> 0);
    }
    return out;
  }
}
