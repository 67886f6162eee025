/**
 * Finite-difference gradient checks through onnxruntime. The loss is sum(f(inputs) * R) for a fixed random R,
 * accumulated in float64 so that output elements a perturbation does not touch cancel exactly between the
 * two runs; the central difference of that loss is compared with the graph's own gradient.
 */
import assert from 'node:assert/strict';
import { GraphBuilder, hostTensor } from '../../src/graph/builder.js';
import { grad } from '../../src/graph/autodiff.js';
import type { Value } from '../../src/graph/ir.js';
import { createSession } from '../../src/runtime/session.js';
import { float32, type HostTensor } from '../../src/tensor.js';
import { seeded } from './helpers.js';

export interface GradInput {
  readonly name: string;
  readonly value: HostTensor<'float32'>;
  /** Differentiate with respect to it (default true); false makes it a fixed input. */
  readonly wrt?: boolean;
  /** Store it as a weight (initializer) instead of a graph input; never differentiated. */
  readonly frozen?: boolean;
}

export interface GradCheckOptions {
  readonly h?: number;
  readonly atol?: number;
  readonly rtol?: number;
  /** Check at most this many elements per input (spread evenly). */
  readonly maxElements?: number;
}

export interface GradCheckResult {
  readonly worst: number;
  readonly checked: number;
  readonly model: GraphBuilder;
}

export async function gradCheck(
  build: (g: GraphBuilder, xs: Value[]) => Value,
  inputs: readonly GradInput[],
  opts: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const h = opts.h ?? 1e-3;
  const atol = opts.atol ?? 2e-4;
  const rtol = opts.rtol ?? 2e-3;
  const g = new GraphBuilder('gradcheck');
  const xs = inputs.map((i) => (i.frozen ? g.weight(i.name, i.value) : g.input(i.name, 'float32', i.value.shape)));
  const y = build(g, xs);
  const n = y.shape.reduce((a, b) => a * b, 1);
  const r = g.constant(hostTensor('float64', y.shape, Array.from(seeded(n, 99))));
  const loss = g.reduceSum(g.mul(g.cast(y, 'float64'), r), y.shape.map((_, i) => i), false);
  const wrt = inputs.map((inp, i) => ({ inp, v: xs[i]! })).filter(({ inp }) => !inp.frozen && inp.wrt !== false);
  const grads = grad(g, loss, wrt.map((w) => w.v));
  g.output(loss, 'loss');
  grads.forEach((gv, i) => g.output(gv, `grad_${wrt[i]!.inp.name}`));
  const session = await createSession(g.toModel(), { threads: 1 });
  const feedsOf = (override?: { name: string; t: HostTensor }): Record<string, HostTensor> => {
    const f: Record<string, HostTensor> = {};
    for (const i of inputs) if (!i.frozen) f[i.name] = override && override.name === i.name ? override.t : i.value;
    return f;
  };
  let worst = 0;
  let checked = 0;
  try {
    const base = await session.run(feedsOf());
    for (const { inp } of wrt) {
      const analytic = base[`grad_${inp.name}`]!;
      assert.deepEqual(analytic.shape, inp.value.shape, `gradient shape for ${inp.name}`);
      const ad = analytic.data as Float32Array;
      const count = inp.value.data.length;
      const stride = Math.max(1, Math.ceil(count / (opts.maxElements ?? 48)));
      for (let j = 0; j < count; j += stride) {
        const lossAt = async (delta: number): Promise<number> => {
          const data = Float32Array.from(inp.value.data);
          data[j] = data[j]! + delta;
          const out = await session.run(feedsOf({ name: inp.name, t: float32(inp.value.shape, data) }));
          return (out.loss!.data as Float64Array)[0]!;
        };
        // Use the perturbation actually representable in float32 so the quotient is exact up to rounding.
        const x0 = inp.value.data[j]!;
        const hp = Math.fround(x0 + h) - x0;
        const hm = x0 - Math.fround(x0 - h);
        const fd = ((await lossAt(hp)) - (await lossAt(-hm))) / (hp + hm);
        const an = ad[j]!;
        const err = Math.abs(fd - an);
        worst = Math.max(worst, err / (atol + rtol * Math.abs(fd)));
        checked++;
        if (process.env.GRADCHECK_LOG) console.log(`worst ${(err / (atol + rtol * Math.abs(fd))).toFixed(3)}`);
        assert.ok(err <= atol + rtol * Math.abs(fd), `d loss / d ${inp.name}[${j}]: analytic ${an}, finite difference ${fd}`);
      }
    }
  } finally {
    await session.release();
  }
  return { worst, checked, model: g };
}
