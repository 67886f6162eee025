/**
 * One sampler step's model call as the txt2img pipeline makes it: A1111's CFG denoiser (cond and uncond in one
 * batch) around the k-diffusion CompVis denoiser (c_in scaling, sigma -> t) around a UNet. Benches plug in
 * either a real onnxruntime session or a free stand-in, and time the same production code path.
 */
import { DarkroomError } from '../../packages/core/src/errors.js';
import { createCfgDenoiser, type CfgDenoiser } from '../../packages/core/src/pipeline/cfg-denoiser.js';
import { conditionedDenoiser } from '../../packages/core/src/pipeline/sample.js';
import type { PipelineModel, PipelineUNet } from '../../packages/core/src/pipeline/types.js';
import type { EngineSession } from '../../packages/core/src/runtime/session.js';
import { sdDiscreteSchedule } from '../../packages/core/src/sampling/schedules/discrete.js';
import { float32, type Float32Tensor } from '../../packages/core/src/tensor.js';
import { nowMs } from './stats.js';

/** A UNet over an open session with the feeds `loadModel`'s UNet gives it; `runMs` collects EngineSession.run times. */
export class SessionUNet implements PipelineUNet {
  readonly runMs: number[] = [];

  constructor(private readonly session: EngineSession) {}

  async run(x: Float32Tensor, t: Float32Array, contextK: Float32Tensor, contextV?: Float32Tensor): Promise<Float32Tensor> {
    const t0 = nowMs();
    const out = await this.session.run({
      x,
      t: { dtype: 'float32', shape: [t.length], data: t },
      context_k: contextK,
      context_v: contextV ?? contextK,
    });
    this.runMs.push(nowMs() - t0);
    const y = out.out;
    if (y?.dtype !== 'float32') throw new DarkroomError('MODEL_BAD_OUTPUT', 'UNet session gave no float32 "out"');
    return y as Float32Tensor;
  }
}

/**
 * A UNet that costs nothing: it answers with a fixed eps of the input's shape, as a new tensor each call as a
 * session does (the copy is ORT's cost, not ours, so it is prepared once per shape and reused).
 */
export class FreeUNet implements PipelineUNet {
  private readonly outputs = new Map<string, Float32Tensor>();

  async run(x: Float32Tensor): Promise<Float32Tensor> {
    const key = x.shape.join('x');
    let out = this.outputs.get(key);
    if (!out) {
      out = float32(x.shape, Float32Array.from({ length: x.data.length }, (_, i) => Math.sin(i * 0.001) * 0.5));
      this.outputs.set(key, out);
    }
    return out;
  }
}

function unused(what: string): never {
  throw new DarkroomError('BENCH_UNUSED', `the bench model has no ${what}`);
}

/** A pipeline model that only has a UNet (the sampler loop needs nothing else). */
export function unetOnlyModel(unet: PipelineUNet, parameterization: 'eps' | 'v' = 'eps'): PipelineModel {
  return {
    kind: parameterization === 'v' ? 'sd2' : 'sd1',
    name: 'bench',
    sha256: '0'.repeat(64),
    parameterization,
    alphasCumprod: sdDiscreteSchedule().alphasCumprod,
    scaleFactor: 0.18215,
    unet,
    textEncoder: {
      width: 0,
      padTokenId: 0,
      defaultClipSkip: 1,
      tokenEmbedding: float32([0, 0]),
      encode: () => unused('text encoder'),
    },
    vae: { decode: () => unused('VAE'), encode: () => unused('VAE') },
    tokenizer: { bosId: 49406, eosId: 49407, commaId: undefined, encode: () => unused('tokenizer') },
  };
}

/** Seeded context rows (tokens, width) standing in for a prompt's conditioning. */
export function fakeConditioning(tokens: number, width: number, seed: number): Float32Tensor {
  const data = new Float32Array(tokens * width);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 2;
  }
  return float32([1, tokens, width], data);
}

/** The CFG denoiser of a single-image txt2img job: one prompt, one negative prompt, one UNet call per step. */
export function cfgDenoiserFor(model: PipelineModel, cond: Float32Tensor, uncond: Float32Tensor, cfgScale = 7): CfgDenoiser {
  const forever = Number.MAX_SAFE_INTEGER;
  return createCfgDenoiser(conditionedDenoiser(model, undefined), {
    conds: [{ parts: [{ weight: 1, schedule: [{ endAtStep: forever, cond }] }] }],
    unconds: [[{ endAtStep: forever, cond: uncond }]],
    cfgScale,
  });
}
