/**
 * The ESRGAN-family upscaler's graph (RRDBNet), from weights under Real-ESRGAN's names; model-files/rrdbnet.ts
 * reads the architecture off a file and renames its weights.
 */
import { DarkroomError } from '../errors.js';
import { GraphBuilder } from '../graph/builder.js';
import type { BuiltModel } from '../graph/ir.js';
import type { RrdbWeights } from '../model-files/rrdbnet.js';

/** The RRDBNet graph for one input size: `image` (1,3,H,W) in [0,1] to `upscaled` (1,3,sH,sW), unclamped. */
export function buildRrdbGraph(weights: RrdbWeights, height: number, width: number): BuiltModel {
  const { config, tensors } = weights;
  const g = new GraphBuilder('rrdbnet');
  const conv = (x: ReturnType<GraphBuilder['input']>, name: string): ReturnType<GraphBuilder['input']> => {
    const w = tensors.get(`${name}.weight`);
    const b = tensors.get(`${name}.bias`);
    if (!w || !b) throw new DarkroomError('MODEL_MISSING_TENSOR', `RRDBNet weights lack ${name}`, { key: name });
    return g.conv(x, g.weight(`${name}.weight`, w), g.weight(`${name}.bias`, b), { pads: [1, 1, 1, 1] });
  };
  const lrelu = (x: ReturnType<GraphBuilder['input']>): ReturnType<GraphBuilder['input']> => g.leakyRelu(x, 0.2);
  const input = g.input('image', 'float32', [1, config.channels, height, width]);
  const feat = conv(input, 'conv_first');
  let trunk = feat;
  for (let b = 0; b < config.blocks; b++) {
    const rrdbIn = trunk;
    let x = rrdbIn;
    for (let r = 1; r <= 3; r++) {
      const prefix = `body.${b}.rdb${r}`;
      const dense = [x];
      for (let c = 1; c <= 4; c++) dense.push(lrelu(conv(g.concat(dense, 1), `${prefix}.conv${c}`)));
      const x5 = conv(g.concat(dense, 1), `${prefix}.conv5`);
      x = g.add(g.mul(x5, 0.2), x);
    }
    trunk = g.add(g.mul(x, 0.2), rrdbIn);
  }
  let y = g.add(feat, conv(trunk, 'conv_body'));
  for (let u = 1; u <= Math.log2(config.scale); u++) y = lrelu(conv(g.resizeNearest(y, 2), `conv_up${u}`));
  g.output(conv(lrelu(conv(y, 'conv_hr')), 'conv_last'), 'upscaled');
  return g.toModel();
}
