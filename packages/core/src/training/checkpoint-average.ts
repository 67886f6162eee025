import { DarkroomError } from '../errors.js';
import { toHalf } from '../models/layers.js';
import { float32, type HostTensor, toFloat32 } from '../tensor.js';

/**
 * Weight averaging of two checkpoints of one model ("model soup"): every floating-point weight becomes
 * (1 - weight) * a + weight * b. Two checkpoints fine-tuned from the same one lie in one basin, so
 * the average keeps what each learnt better than either run alone: the built-in model takes the shapes a further run
 * learnt and the colours the run before it held (docs/demo-model.md). float16 weights stay float16, other floating
 * types come out float32; integer tensors (position ids) must be equal.
 */
export function averageCheckpoints(
  a: ReadonlyMap<string, HostTensor>,
  b: ReadonlyMap<string, HostTensor>,
  weight: number,
): Map<string, HostTensor> {
  if (!(weight >= 0 && weight <= 1)) throw new DarkroomError('AVERAGE_BAD_WEIGHT', `the weight of the second checkpoint must be in [0, 1], not ${weight}`);
  const missing = [...a.keys()].filter((k) => !b.has(k)).concat([...b.keys()].filter((k) => !a.has(k)));
  if (missing.length > 0) {
    throw new DarkroomError('AVERAGE_MISMATCH', `the checkpoints hold different tensors (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}): not one model`);
  }
  const out = new Map<string, HostTensor>();
  for (const [name, ta] of a) {
    const tb = b.get(name)!;
    if (ta.shape.join(',') !== tb.shape.join(',')) {
      throw new DarkroomError('AVERAGE_MISMATCH', `tensor "${name}" is [${ta.shape.join(', ')}] in one checkpoint and [${tb.shape.join(', ')}] in the other`);
    }
    if (!isFloat(ta) || !isFloat(tb)) {
      if (ta.dtype !== tb.dtype || !sameValues(ta.data, tb.data)) {
        throw new DarkroomError('AVERAGE_MISMATCH', `integer tensor "${name}" differs between the checkpoints`);
      }
      out.set(name, ta);
      continue;
    }
    const x = toFloat32(ta).data;
    const y = toFloat32(tb).data;
    const mixed = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) mixed[i] = (1 - weight) * x[i]! + weight * y[i]!;
    const t = float32(ta.shape, mixed);
    out.set(name, ta.dtype === 'float16' ? toHalf(t) : t);
  }
  return out;
}

function isFloat(t: HostTensor): boolean {
  return t.dtype === 'float32' || t.dtype === 'float16' || t.dtype === 'bfloat16' || t.dtype === 'float64';
}

function sameValues(x: HostTensor['data'], y: HostTensor['data']): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
