/**
 * AdamW as torch computes it (`torch.optim.AdamW`, single-tensor path, amsgrad off, not capturable): weight decay
 * first, then the moments, then the bias-corrected step. Every tensor operation rounds to float32 as torch's
 * float32 kernels do; the bias corrections and the step size are Python floats (float64), as in torch.
 */
import type { AdamWParamState, AdamWState } from './adamw-state.js';

export type { AdamWParamState, AdamWState } from './adamw-state.js';

/** torch's AdamW defaults; A1111 passes weight_decay 0 for embeddings and leaves the default 0.01 for hypernetworks. */
export const ADAMW_DEFAULTS = { betas: [0.9, 0.999] as const, eps: 1e-8, weightDecay: 0.01 };

export function newAdamWState(sizes: readonly number[], lr: number, weightDecay: number): AdamWState {
  return {
    lr,
    betas: ADAMW_DEFAULTS.betas,
    eps: ADAMW_DEFAULTS.eps,
    weightDecay,
    params: sizes.map((n) => ({ step: 0, expAvg: new Float32Array(n), expAvgSq: new Float32Array(n) })),
  };
}

export function cloneAdamWState(s: AdamWState): AdamWState {
  return { ...s, params: s.params.map((p) => ({ step: p.step, expAvg: p.expAvg.slice(), expAvgSq: p.expAvgSq.slice() })) };
}

/** One update of one tensor in place. */
function stepTensor(param: Float32Array, grad: Float32Array, st: AdamWParamState, group: AdamWState): void {
  const f = Math.fround;
  const lr = group.lr;
  const [beta1, beta2] = group.betas;
  st.step += 1;
  const decay = f(1 - lr * group.weightDecay);
  const oneMinusB1 = f(1 - beta1);
  const oneMinusB2 = f(1 - beta2);
  const b1 = f(beta1);
  const b2 = f(beta2);
  const biasCorrection1 = 1 - beta1 ** st.step;
  const biasCorrection2 = 1 - beta2 ** st.step;
  const stepSize = f(lr / biasCorrection1);
  const bc2Sqrt = f(Math.sqrt(biasCorrection2));
  const eps = f(group.eps);
  const m = st.expAvg;
  const v = st.expAvgSq;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    const p = f(param[i]! * decay);
    const mi = f(f(m[i]! * b1) + f(g * oneMinusB1));
    const vi = f(f(v[i]! * b2) + f(f(g * g) * oneMinusB2));
    m[i] = mi;
    v[i] = vi;
    const denom = f(f(f(Math.sqrt(vi)) / bc2Sqrt) + eps);
    param[i] = f(p - f(stepSize * f(mi / denom)));
  }
}

/** `optimizer.step()`: every tensor updated in place with its own state, at the group's lr. */
export function adamwStep(params: readonly Float32Array[], grads: readonly Float32Array[], state: AdamWState): void {
  if (params.length !== state.params.length || grads.length !== params.length) {
    throw new RangeError(`AdamW has state for ${state.params.length} tensors, given ${params.length} parameters and ${grads.length} gradients`);
  }
  params.forEach((p, i) => stepTensor(p, grads[i]!, state.params[i]!, state));
}
