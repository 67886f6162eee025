/**
 * k-diffusion get_sigmas_karras exactly as torch computes it on float32 (Restart rebuilds its own schedule
 * with it). torch.linspace's CPU kernel writes blocks of 16 with an 8-wide vector arange and the tail with
 * the scalar formula; both are reproduced so longer schedules match too.
 */
const f = Math.fround;
const VEC = 8;

export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 0) return out;
  if (steps === 1) {
    out[0] = f(start);
    return out;
  }
  const s0 = f(start);
  const s1 = f(end);
  const step = f(f(s1 - s0) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const scalarAt = (idx: number): number => (idx < halfway ? f(s0 + f(step * idx)) : f(s1 - f(step * (steps - idx - 1))));
  let i = 0;
  for (; i + 2 * VEC <= steps; i += 2 * VEC) {
    for (let v = 0; v < 2; v++) {
      const idx = i + v * VEC;
      const base = scalarAt(idx);
      for (let j = 0; j < VEC; j++) out[idx + j] = j === 0 ? base : f(base + f(j * step));
    }
  }
  for (; i < steps; i++) out[i] = scalarAt(i);
  return out;
}

/** Karras et al. (2022) schedule, n sigmas from sigma_max down to sigma_min, then a trailing 0. */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): Float32Array {
  const ramp = torchLinspaceF32(0, 1, n);
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  const span = f(minInv - maxInv);
  const fMax = f(maxInv);
  const fRho = f(rho);
  const out = new Float32Array(n + 1);
  for (let i = 0; i < n; i++) out[i] = f(f(fMax + f(ramp[i]! * span)) ** fRho);
  return out;
}
