/**
 * torch's CPU float32 sum of a contiguous tensor (ATen `cascade_sum` over AVX2 vectors of 8 lanes), reproduced
 * operation for operation so means match torch bit for bit: the row is read as vectors, 4 vector accumulators
 * run in parallel (ILP), each with a 4-level cascade whose level step is 2^max(4, ceil(log2(n))/4); the tail
 * that does not fill a vector is summed first and the 8 lanes are added to it in order.
 *
 * This is the single-chunk path: exact for tensors up to torch's parallel grain (32768 elements) or any size
 * with one thread. Larger tensors on several threads are split by torch and may differ in the last bit.
 */
const f = Math.fround;
const LANES = 8;
const ILP = 4;
const LEVELS = 4;

function ceilLog2(x: number): number {
  return x <= 1 ? 0 : Math.ceil(Math.log2(x));
}

/** `multi_row_sum`: `size` groups of ILP vectors; returns ILP vector accumulators (each LANES wide). */
function multiRowSum(x: Float32Array, size: number): Float32Array[] {
  const levelPower = Math.max(4, Math.floor(ceilLog2(size) / LEVELS));
  const levelStep = 2 ** levelPower;
  const levelMask = levelStep - 1;
  const acc = Array.from({ length: LEVELS }, () => Array.from({ length: ILP }, () => new Float32Array(LANES)));
  const addVector = (into: Float32Array, group: number, k: number): void => {
    const base = (group * ILP + k) * LANES;
    for (let l = 0; l < LANES; l++) into[l] = f(into[l]! + x[base + l]!);
  };
  const addAcc = (into: Float32Array, from: Float32Array): void => {
    for (let l = 0; l < LANES; l++) into[l] = f(into[l]! + from[l]!);
  };
  let i = 0;
  while (i + levelStep <= size) {
    for (let j = 0; j < levelStep; j++, i++) for (let k = 0; k < ILP; k++) addVector(acc[0]![k]!, i, k);
    for (let j = 1; j < LEVELS; j++) {
      for (let k = 0; k < ILP; k++) {
        addAcc(acc[j]![k]!, acc[j - 1]![k]!);
        acc[j - 1]![k]!.fill(0);
      }
      if ((i & (levelMask * 2 ** (j * levelPower))) !== 0) break;
    }
  }
  for (; i < size; i++) for (let k = 0; k < ILP; k++) addVector(acc[0]![k]!, i, k);
  for (let j = 1; j < LEVELS; j++) for (let k = 0; k < ILP; k++) addAcc(acc[0]![k]!, acc[j]![k]!);
  return acc[0]!;
}

/** Sum of all elements, float32, in torch's CPU order. */
export function torchSumF32(x: Float32Array): number {
  const vectors = Math.floor(x.length / LANES);
  const groups = Math.floor(vectors / ILP);
  const partial = multiRowSum(x, groups);
  const first = partial[0]!;
  for (let v = groups * ILP; v < vectors; v++) for (let l = 0; l < LANES; l++) first[l] = f(first[l]! + x[v * LANES + l]!);
  for (let k = 1; k < ILP; k++) for (let l = 0; l < LANES; l++) first[l] = f(first[l]! + partial[k]![l]!);
  let total = 0;
  for (let i = vectors * LANES; i < x.length; i++) total = f(total + x[i]!);
  for (let l = 0; l < LANES; l++) total = f(total + first[l]!);
  return total;
}

/** `tensor.mean()` on CPU for float32: the sum above divided by the element count, rounded to float32. */
export function torchMeanF32(x: Float32Array): number {
  return f(torchSumF32(x) / x.length);
}
