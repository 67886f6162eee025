/** torch's `repr` of each Sequential entry, so a loaded module can be compared with what A1111 builds. */
import { pyFloatRepr } from '../../text/python-compat.js';
import type { HypernetworkActivation, HypernetworkLayer } from './hypernetwork.js';

const ACTIVATION_REPR: Record<HypernetworkActivation, string> = {
  relu: 'ReLU()',
  leakyrelu: 'LeakyReLU(negative_slope=0.01)',
  elu: 'ELU(alpha=1.0)',
  swish: 'Hardswish()',
  hardswish: 'Hardswish()',
  tanh: 'Tanh()',
  sigmoid: 'Sigmoid()',
  celu: 'CELU(alpha=1.0)',
  gelu: "GELU(approximate='none')",
  glu: 'GLU(dim=-1)',
  hardshrink: 'Hardshrink(0.5)',
  hardsigmoid: 'Hardsigmoid()',
  hardtanh: 'Hardtanh(min_val=-1.0, max_val=1.0)',
  logsigmoid: 'LogSigmoid()',
  logsoftmax: 'LogSoftmax(dim=None)',
  mish: 'Mish()',
  prelu: 'PReLU(num_parameters=1)',
  relu6: 'ReLU6()',
  rrelu: 'RReLU(lower=0.125, upper=0.3333333333333333)',
  selu: 'SELU()',
  silu: 'SiLU()',
  softmax: 'Softmax(dim=None)',
  softmax2d: 'Softmax2d()',
  softmin: 'Softmin(dim=None)',
  softplus: 'Softplus(beta=1, threshold=20)',
  softshrink: 'Softshrink(0.5)',
  softsign: 'Softsign()',
  tanhshrink: 'Tanhshrink()',
};

export function describeLayer(l: HypernetworkLayer): string {
  switch (l.kind) {
    case 'linear':
      return `Linear(in_features=${l.inFeatures}, out_features=${l.outFeatures}, bias=True)`;
    case 'activation':
      return ACTIVATION_REPR[l.fn];
    case 'layernorm':
      return `LayerNorm((${l.width},), eps=1e-05, elementwise_affine=True)`;
    case 'dropout':
      return `Dropout(p=${pyFloatRepr(l.p)}, inplace=False)`;
  }
}
