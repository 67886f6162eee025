/**
 * Float32 loops the samplers share. Every function writes into a caller-provided buffer (which may alias an
 * input) so a sampler allocates its working set once per run, not per step. Products are rounded to float32
 * before they are added, as torch evaluates `x + d * dt` on float32 tensors, so results stay within an ulp
 * of the upstream arithmetic.
 */
const f = Math.fround;

/** out = x + a * y */
export function addScaled(out: Float32Array, x: Float32Array, a: number, y: Float32Array): Float32Array {
  const fa = f(a);
  for (let i = 0; i < out.length; i++) out[i] = x[i]! + f(y[i]! * fa);
  return out;
}

/** out = a * x + b * y (each product rounded to float32 first) */
export function combine2(out: Float32Array, a: number, x: Float32Array, b: number, y: Float32Array): Float32Array {
  const fa = f(a);
  const fb = f(b);
  for (let i = 0; i < out.length; i++) out[i] = f(x[i]! * fa) + f(y[i]! * fb);
  return out;
}

/** out = a * x - b * y: DPM-Solver's exponential-integrator update `(σ_next/σ) x - expm1(-h) D`. */
export function scaleSub(out: Float32Array, a: number, x: Float32Array, b: number, y: Float32Array): Float32Array {
  const fa = f(a);
  const fb = f(b);
  for (let i = 0; i < out.length; i++) out[i] = f(x[i]! * fa) - f(y[i]! * fb);
  return out;
}

/** out = (x - denoised) / sigma: the Karras ODE derivative (A1111's to_d, scalar sigma). */
export function toD(out: Float32Array, x: Float32Array, denoised: Float32Array, sigma: number): Float32Array {
  const s = f(sigma);
  for (let i = 0; i < out.length; i++) out[i] = f(x[i]! - denoised[i]!) / s;
  return out;
}

/**
 * x += ((x - denoised) / sigma) * dt in one pass: an Euler step when the derivative is not needed again
 * (same float32 rounding as toD followed by addScaled).
 */
export function eulerUpdate(x: Float32Array, denoised: Float32Array, sigma: number, dt: number): Float32Array {
  const s = f(sigma);
  const h = f(dt);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    x[i] = xi + f(f(f(xi - denoised[i]!) / s) * h);
  }
  return x;
}

/** x += noise * s_noise * scale, with torch's left-to-right rounding `(noise * s_noise) * scale`. */
export function addNoise(x: Float32Array, noise: Float32Array, sNoise: number, scale: number): Float32Array {
  const sn = f(sNoise);
  const sc = f(scale);
  if (sn === 1) {
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + f(noise[i]! * sc);
  } else {
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + f(f(noise[i]! * sn) * sc);
  }
  return x;
}

/** out = a - b */
export function sub(out: Float32Array, a: Float32Array, b: Float32Array): Float32Array {
  for (let i = 0; i < out.length; i++) out[i] = a[i]! - b[i]!;
  return out;
}

/**
 * Classifier-free guidance as A1111's CFGDenoiser combines it: `uncond + (cond - uncond) * scale`, for a
 * model output batch laid out [cond..., uncond...] (each half `out.length` values).
 */
export function cfgCombine(out: Float32Array, cond: Float32Array, uncond: Float32Array, scale: number): Float32Array {
  const s = f(scale);
  for (let i = 0; i < out.length; i++) {
    const u = uncond[i]!;
    out[i] = u + f(f(cond[i]! - u) * s);
  }
  return out;
}

/** Fills a per-batch-item sigma vector (A1111 calls the model with `sigma * s_in`). */
export function fillSigma(out: Float32Array, sigma: number): Float32Array {
  out.fill(f(sigma));
  return out;
}
