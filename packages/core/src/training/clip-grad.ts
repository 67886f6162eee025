/**
 * Gradient clipping as A1111 calls it between accumulation and the optimizer step:
 * `clip_grad_norm_(params, v)` scales all gradients together when their global 2-norm exceeds v;
 * `clip_grad_value_(params, v)` clamps each element to [-v, v].
 */
export type ClipGradMode = 'disabled' | 'norm' | 'value';

/** torch.norm of each tensor, then the norm of those norms (float32 results, as torch returns). */
export function totalGradNorm(grads: readonly Float32Array[]): number {
  const f = Math.fround;
  let total = 0;
  for (const g of grads) {
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
    const n = f(Math.sqrt(s));
    total += n * n;
  }
  return f(Math.sqrt(total));
}

/** Clips in place; returns the total norm for 'norm' (what torch returns and A1111 logs), else undefined. */
export function clipGradients(grads: readonly Float32Array[], mode: ClipGradMode, value: number): number | undefined {
  const f = Math.fround;
  if (mode === 'value') {
    const v = f(value);
    for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = Math.min(v, Math.max(-v, g[i]!));
    return undefined;
  }
  if (mode !== 'norm') return undefined;
  const total = totalGradNorm(grads);
  // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, computed as float32 tensors.
  const coef = f(f(value) / f(total + 1e-6));
  if (coef < 1) for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = f(g[i]! * coef);
  return total;
}
