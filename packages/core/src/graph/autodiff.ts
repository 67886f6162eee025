/**
 * Reverse-mode autodiff over the builder's graph. `grad` walks the nodes between `wrt` and `loss` in reverse
 * creation order and asks the VJP table for each one; the backward nodes land in the same graph, so training
 * is one forward-plus-backward model run by onnxruntime like any other. Only inputs that depend on `wrt`
 * receive gradients, which keeps frozen weights (and their costly weight-gradient convolutions) out of it.
 */
import { DarkroomError } from '../errors.js';
import { numel } from '../tensor.js';
import type { GraphBuilder } from './builder.js';
import { hostTensor } from './builder.js';
import type { Value } from './ir.js';
import { NON_DIFFERENTIABLE, VJP_RULES } from './vjp.js';

export { NON_DIFFERENTIABLE, VJP_RULES } from './vjp.js';
export type { VjpRule, VjpContext } from './vjp.js';

/**
 * Back-propagates `seeds` (one cotangent per value in `from`) to `wrt`. Returns one gradient per `wrt`
 * value, or undefined where no path connects it.
 */
export function backprop(b: GraphBuilder, from: readonly Value[], seeds: readonly Value[], wrt: readonly Value[]): Array<Value | undefined> {
  const nodes = b.nodes.slice();
  const dependsOnWrt = new Set<number>(wrt.map((w) => w.id));
  for (const n of nodes) {
    if (n.inputs.some((i) => i && dependsOnWrt.has(i.id))) for (const o of n.outputs) dependsOnWrt.add(o.id);
  }
  const grads = new Map<number, Value>();
  from.forEach((v, i) => grads.set(v.id, seeds[i]!));
  const accumulate = (v: Value, g: Value): void => {
    if (g.dtype !== v.dtype || g.shape.length !== v.shape.length || g.shape.some((d, i) => d !== v.shape[i])) {
      throw new DarkroomError('VJP_SHAPE_MISMATCH', `gradient for ${v.name} has ${g.dtype}[${g.shape}], expected ${v.dtype}[${v.shape}]`);
    }
    const prev = grads.get(v.id);
    grads.set(v.id, prev ? b.add(prev, g) : g);
  };
  for (let k = nodes.length - 1; k >= 0; k--) {
    const node = nodes[k]!;
    const dy = node.outputs.map((o) => grads.get(o.id));
    if (dy.every((g) => g === undefined)) continue;
    const needs = node.inputs.map((i) => i !== undefined && dependsOnWrt.has(i.id));
    if (!needs.some(Boolean)) continue;
    const key = node.domain ? `${node.domain}:${node.opType}` : node.opType;
    if (NON_DIFFERENTIABLE.has(key)) continue;
    const rule = VJP_RULES[key];
    if (!rule) {
      throw new DarkroomError('VJP_MISSING', `no gradient rule for ${node.domain ? `${node.domain}:` : ''}${node.opType}`, { opType: node.opType });
    }
    const dx = rule({ b, node, dy, needs, backprop });
    node.inputs.forEach((inp, i) => {
      const g = dx[i];
      if (inp && needs[i] && g) accumulate(inp, g);
    });
  }
  return wrt.map((w) => grads.get(w.id));
}

/**
 * Gradients of a scalar `loss` (shape [] or [1]) with respect to `wrt`. Values the loss does not depend on
 * get an all-zero gradient (a broadcast constant, not a stored tensor).
 */
export function grad(b: GraphBuilder, loss: Value, wrt: readonly Value[]): Value[] {
  if (numel(loss.shape) !== 1) {
    throw new DarkroomError('VJP_LOSS_NOT_SCALAR', `loss must have one element, got shape [${loss.shape}]`);
  }
  const seed = b.constant(hostTensor(loss.dtype, loss.shape, [1]));
  const gs = backprop(b, [loss], [seed], wrt);
  return wrt.map((w, i) => gs[i] ?? b.expand(b.scalar(0, w.dtype), w.shape));
}
