/**
 * torch.linspace as the CPU kernel computes it. The values differ from the textbook formula in the last bit, and
 * schedules are compared to A1111 to 1e-6, so the kernel's exact arithmetic is reproduced:
 * the first half counts up from `start`, the second half down from `end`; contiguous output goes through the
 * vectorized loop (two vectors per iteration, each `base + j*step` from the vector's first index), the tail
 * through the scalar loop.
 */
const f = Math.fround;

function linspaceWith(
  start: number,
  end: number,
  steps: number,
  round: (x: number) => number,
  vectorWidth: number,
): number[] {
  if (steps <= 0) return [];
  if (steps === 1) return [round(start)];
  const s = round(start);
  const e = round(end);
  const step = round(round(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const out = new Array<number>(steps);
  const scalarAt = (i: number): number =>
    i < halfway ? round(s + round(step * i)) : round(e - round(step * (steps - i - 1)));
  let i = 0;
  for (; i + 2 * vectorWidth <= steps; i += 2 * vectorWidth) {
    for (const v of [i, i + vectorWidth]) {
      const base = scalarAt(v);
      for (let j = 0; j < vectorWidth; j++) out[v + j] = j === 0 ? base : round(base + round(step * j));
    }
  }
  for (; i < steps; i++) out[i] = scalarAt(i);
  return out;
}

/** torch.linspace(start, end, steps) in float32 (the default dtype). */
export function linspaceF32(start: number, end: number, steps: number): number[] {
  return linspaceWith(start, end, steps, f, 8);
}

/** torch.linspace(..., dtype=torch.float64). */
export function linspaceF64(start: number, end: number, steps: number): number[] {
  return linspaceWith(start, end, steps, (x) => x, 4);
}

/** numpy.linspace(start, stop, num) (float64): `start + i*step`, the last value forced to `stop`. */
export function numpyLinspace(start: number, stop: number, num: number): number[] {
  if (num <= 0) return [];
  if (num === 1) return [start];
  const div = num - 1;
  const delta = stop - start;
  const step = delta / div;
  const out = new Array<number>(num);
  for (let i = 0; i < num; i++) out[i] = step === 0 ? (i / div) * delta + start : i * step + start;
  out[num - 1] = stop;
  return out;
}
