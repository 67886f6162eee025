/**
 * A hypernetwork's trained tensors in the order A1111's optimizer sees them (`Hypernetwork.weights()`): per
 * context width in the order of `layers`, the k module then the v module, each module's parameters in
 * Sequential order, weight before bias. The `.optim` state is indexed by this order.
 */
import type { Float32Tensor } from '../tensor.js';
import type { Hypernetwork } from '../networks/hypernetworks/hypernetwork.js';

export interface NamedParameter {
  /** `<width>.<k|v>.linear.<index>.<weight|bias>`, as the training fixtures name them. */
  readonly name: string;
  readonly tensor: Float32Tensor;
}

export function hypernetworkParameters(hn: Hypernetwork): NamedParameter[] {
  const out: NamedParameter[] = [];
  for (const [width, pair] of hn.layers) {
    pair.forEach((module, side) => {
      for (const layer of module.layers) {
        const p = module.params.get(layer.index);
        if (!p) continue;
        const prefix = `${width}.${side === 0 ? 'k' : 'v'}.linear.${layer.index}`;
        out.push({ name: `${prefix}.weight`, tensor: p.weight });
        if (p.bias) out.push({ name: `${prefix}.bias`, tensor: p.bias });
      }
    });
  }
  return out;
}
