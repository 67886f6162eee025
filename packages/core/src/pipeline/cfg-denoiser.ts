/**
 * A1111's CFGDenoiser (modules/sd_samplers_cfg_denoiser.py) as a k-diffusion denoiser: per call it picks the
 * prompt-schedule entry of every cond and uncond for the current denoiser step, lays the rows out as A1111 does
 * (each item's AND parts, item-major, then the uncond rows), runs the model on them (one call when cond and
 * uncond have the same token count, else cond and uncond separately unless pad_cond_uncond), and combines them
 * with the AND weights and the CFG scale in float32.
 */
import { DarkroomError } from '../errors.js';
import { float32, type Float32Tensor } from '../tensor.js';
import type { Denoiser, GuidanceOptions } from '../sampling/types.js';
import { epsScalings } from '../sampling/denoisers.js';
import { cfgCombineSimd, combineSimd, scaleSimd } from './cfg-simd.js';
import { blendLatent, type LatentBlend } from './inpaint.js';

/** One entry of a prompt schedule: conditioning (tokens, width) used while denoiser step <= endAtStep. */
export interface ScheduledCond {
  readonly endAtStep: number;
  readonly cond: Float32Tensor;
}

/** The conditioning of one batch item: its AND parts, each a schedule with a weight. */
export interface MultiCond {
  readonly parts: ReadonlyArray<{ readonly weight: number; readonly schedule: readonly ScheduledCond[] }>;
}

/**
 * The inner denoiser on a set of rows: x (R,C,H,W), sigma (R), context (R,T,D) -> denoised (R,C,H,W). `imageCond`
 * (R,5,H,W) is the inpainting checkpoints' c_concat, row for row with x.
 */
export type ConditionedDenoiser = ((x: Float32Tensor, sigma: Float32Array, context: Float32Tensor, imageCond?: Float32Tensor) => Promise<Float32Tensor>) & {
  /** Present when the denoiser is k-diffusion's CompVisDenoiser around an eps UNet (see EpsDenoiserParts). */
  readonly epsParts?: EpsDenoiserParts;
};

/**
 * The parts of k-diffusion's CompVisDenoiser, D = x + eps(x * c_in, t(sigma)) * c_out. With them a CFG call that
 * runs every row at once fuses the c_in scaling (once per batch item, copied to its other rows), the eps ->
 * denoised step and the combine into two passes over the latent instead of six, with the same float32
 * operations in the same order, so the same bits.
 */
export interface EpsDenoiserParts {
  /** k-diffusion's sigma_to_t. */
  timestep(sigma: number): number;
  /** The UNet on c_in-scaled rows at timesteps `t` (the image conditioning joined on, when given). */
  unet(xScaled: Float32Tensor, t: Float32Array, context: Float32Tensor, imageCond?: Float32Tensor): Promise<Float32Tensor>;
}

export interface CfgTrace {
  /** After each CFG call: the sampler's x and sigma, the combined denoised result, and the step counter. */
  onCfgCall?(info: { step: number; x: Float32Tensor; sigma: Float32Array; denoised: Float32Tensor }): void;
  /** Before each inner model call: which rows it carries. */
  onRows?(info: { step: number; rows: readonly RowSource[]; contextTokens: number }): void;
}

/** Where a row of a model call comes from: cond of (item, AND part, schedule entry) or uncond of (item, entry). */
export type RowSource =
  | { readonly kind: 'cond'; readonly item: number; readonly part: number; readonly entry: number; readonly padEmpty: number }
  | { readonly kind: 'uncond'; readonly item: number; readonly entry: number; readonly padEmpty: number };

export interface CfgOptions {
  readonly conds: readonly MultiCond[];
  readonly unconds: ReadonlyArray<readonly ScheduledCond[]>;
  readonly cfgScale: number;
  /** Pad the shorter of cond/uncond with the empty-prompt encoding so both go through one call. */
  readonly padCondUncond?: boolean;
  /** get_learned_conditioning([""]) of the model: (77, D) or (1, 77, D). Needed with padCondUncond. */
  readonly emptyCond?: Float32Tensor;
  /**
   * A1111's batch_cond_uncond (default on): when cond and uncond differ in length, cond rows go through in
   * chunks of 2 x batch size. Off: chunks of batch size, and uncond apart even when the lengths agree.
   */
  readonly batchCondUncond?: boolean;
  /** Image conditioning per batch item (B,C,H,W), laid out over the rows like x (inpainting checkpoints). */
  readonly imageCond?: Float32Tensor;
  /**
   * Inpainting's latent blend: init * mask + x * nmask on the denoised result (k-diffusion), or on the sampler's x
   * before the model (A1111's timestep samplers set mask_before_denoising).
   */
  readonly inpaint?: { readonly initLatent: Float32Tensor; readonly blend: LatentBlend; readonly beforeDenoising: boolean };
  readonly trace?: CfgTrace;
}

const f = Math.fround;

/** Schedule entry for a denoiser step: the first with step <= end_at_step, else the first entry. */
export function scheduleIndex(schedule: readonly ScheduledCond[], step: number): number {
  for (let i = 0; i < schedule.length; i++) if (step <= schedule[i]!.endAtStep) return i;
  return 0;
}

function tokensOf(t: Float32Tensor): number {
  return t.shape.length === 3 ? t.shape[1]! : t.shape[0]!;
}

function widthOf(t: Float32Tensor): number {
  return t.shape[t.shape.length - 1]!;
}

/** Stacks (T_i, D) tensors to (N, T, D), padding shorter ones by repeating their last vector (AND parts). */
function stackRepeatLast(rows: readonly Float32Tensor[]): Float32Tensor {
  const tokens = Math.max(...rows.map(tokensOf));
  const width = widthOf(rows[0]!);
  const out = new Float32Array(rows.length * tokens * width);
  rows.forEach((r, i) => {
    const t = tokensOf(r);
    const base = i * tokens * width;
    out.set(r.data.subarray(0, t * width), base);
    const last = r.data.subarray((t - 1) * width, t * width);
    for (let k = t; k < tokens; k++) out.set(last, base + k * width);
  });
  return float32([rows.length, tokens, width], out);
}

/** Appends `times` copies of the empty-prompt encoding along tokens to every row (A1111's pad_cond). */
function padWithEmpty(t: Float32Tensor, empty: Float32Tensor, times: number): Float32Tensor {
  const [n, tokens, width] = t.shape as [number, number, number];
  const emptyTokens = tokensOf(empty);
  const total = tokens + times * emptyTokens;
  const out = new Float32Array(n * total * width);
  for (let i = 0; i < n; i++) {
    out.set(t.data.subarray(i * tokens * width, (i + 1) * tokens * width), i * total * width);
    for (let k = 0; k < times; k++) out.set(empty.data.subarray(0, emptyTokens * width), i * total * width + (tokens + k * emptyTokens) * width);
  }
  return float32([n, total, width], out);
}

function sliceRows(t: Float32Tensor, from: number, to: number): Float32Tensor {
  const per = t.data.length / t.shape[0]!;
  return float32([to - from, ...t.shape.slice(1)], t.data.slice(from * per, to * per));
}

function concatRows(parts: readonly Float32Tensor[]): Float32Tensor {
  const n = parts.reduce((s, p) => s + p.shape[0]!, 0);
  const out = new Float32Array(parts.reduce((s, p) => s + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p.data, at);
    at += p.data.length;
  }
  return float32([n, ...parts[0]!.shape.slice(1)], out);
}

/** The model contexts of one combination of schedule entries, padded as pad_cond_uncond asks. */
interface Contexts {
  readonly key: string;
  readonly cond: Float32Tensor;
  readonly uncond: Float32Tensor;
  /** cond then uncond rows, for the single call; undefined when their token counts differ. */
  readonly joined: Float32Tensor | undefined;
  /** Empty-prompt repeats appended to the cond rows / the uncond rows. */
  readonly condPad: number;
  readonly uncondPad: number;
  /** Whether pad_cond_uncond padded either side (the infotext's `Pad conds`). */
  readonly padded: boolean;
}

function buildContexts(key: string, condRows: readonly Float32Tensor[], uncondRows: readonly Float32Tensor[], opts: CfgOptions): Contexts {
  let cond = stackRepeatLast(condRows);
  let uncond = stackRepeatLast(uncondRows);
  let condPad = 0;
  let uncondPad = 0;
  let padded = false;
  if (opts.padCondUncond && tokensOf(cond) !== tokensOf(uncond)) {
    if (!opts.emptyCond) throw new DarkroomError('CFG_NO_EMPTY_COND', 'pad_cond_uncond needs the empty-prompt conditioning');
    const emptyTokens = tokensOf(opts.emptyCond);
    const repeats = Math.floor((tokensOf(cond) - tokensOf(uncond)) / emptyTokens);
    if (repeats !== 0) padded = true;
    if (repeats < 0) {
      cond = padWithEmpty(cond, opts.emptyCond, -repeats);
      condPad = -repeats;
    } else if (repeats > 0) {
      uncond = padWithEmpty(uncond, opts.emptyCond, repeats);
      uncondPad = repeats;
    }
  }
  const joined = tokensOf(cond) === tokensOf(uncond) ? concatRows([cond, uncond]) : undefined;
  return { key, cond, uncond, joined, condPad, uncondPad, padded };
}

/**
 * One model call over every row with the CompVisDenoiser's steps fused into the CFG combine. Row layout as
 * the unfused path: each item's AND parts in item order, then one uncond row per item. Per value the float32
 * operations are those of scaleInput, compVisDenoiser and combine_denoised, in their order.
 */
async function fusedEpsCall(
  parts: EpsDenoiserParts,
  x: Float32Tensor,
  sigma: Float32Array,
  condsList: ReadonlyArray<ReadonlyArray<readonly [number, number]>>,
  rowsTotal: number,
  context: Float32Tensor,
  cfgScale: number,
  imageCond: Float32Tensor | undefined,
): Promise<{ denoised: Float32Tensor; uncondOut: Float32Tensor }> {
  const batch = condsList.length;
  const per = x.data.length / batch;
  const u0 = rowsTotal - batch;
  const xd = x.data;
  const xs = new Float32Array(rowsTotal * per);
  const t = new Float32Array(rowsTotal);
  const ic = imageCond;
  const icPer = ic ? ic.data.length / batch : 0;
  const icIn = ic ? new Float32Array(rowsTotal * icPer) : undefined;
  for (let i = 0; i < batch; i++) {
    // the item's scaled latent into its uncond row, then copied to each of its cond rows
    const cIn = epsScalings(sigma[i]!).cIn;
    const ti = parts.timestep(sigma[i]!);
    const base = (u0 + i) * per;
    const scaled = xs.subarray(base, base + per);
    if (!scaleSimd(xd.subarray(i * per, (i + 1) * per), cIn, scaled)) for (let k = 0; k < per; k++) xs[base + k] = xd[i * per + k]! * cIn;
    t[u0 + i] = ti;
    for (const [row] of condsList[i]!) {
      xs.set(scaled, row * per);
      t[row] = ti;
    }
    if (ic && icIn) {
      const src = ic.data.subarray(i * icPer, (i + 1) * icPer);
      icIn.set(src, (u0 + i) * icPer);
      for (const [row] of condsList[i]!) icIn.set(src, row * icPer);
    }
  }
  const shape = [rowsTotal, ...x.shape.slice(1)];
  const eps = (await parts.unet(float32(shape, xs), t, context, ic && icIn ? float32([rowsTotal, ...ic.shape.slice(1)], icIn) : undefined)).data;
  const uncondOut = new Float32Array(batch * per);
  const out = new Float32Array(batch * per);
  for (let i = 0; i < batch; i++) {
    const cOut = epsScalings(sigma[i]!).cOut;
    const list = condsList[i]!;
    const o = i * per;
    const eu = (u0 + i) * per;
    if (list.length === 1) {
      const ec = list[0]![0] * per;
      const scale = f(list[0]![1] * cfgScale);
      const done = cfgCombineSimd(
        xd.subarray(o, o + per),
        eps.subarray(ec, ec + per),
        eps.subarray(eu, eu + per),
        cOut,
        scale,
        uncondOut.subarray(o, o + per),
        out.subarray(o, o + per),
      );
      if (done) continue;
      for (let k = 0; k < per; k++) {
        const xk = xd[o + k]!;
        const un = f(xk + f(eps[eu + k]! * cOut));
        const dc = f(xk + f(eps[ec + k]! * cOut));
        uncondOut[o + k] = un;
        out[o + k] = f(un + f(f(dc - un) * scale));
      }
      continue;
    }
    for (let k = 0; k < per; k++) {
      const un = f(xd[o + k]! + f(eps[eu + k]! * cOut));
      uncondOut[o + k] = un;
      out[o + k] = un;
    }
    for (const [row, weight] of list) {
      const scale = f(weight * cfgScale);
      const ec = row * per;
      for (let k = 0; k < per; k++) {
        const dc = f(xd[o + k]! + f(eps[ec + k]! * cOut));
        out[o + k] = f(out[o + k]! + f(f(dc - uncondOut[o + k]!) * scale));
      }
    }
  }
  return { denoised: float32(x.shape, out), uncondOut: float32(x.shape, uncondOut) };
}

/** One CFG call's answer: the combined prediction and the uncond rows it was combined from. */
export interface GuidedPrediction {
  readonly denoised: Float32Tensor;
  /** The model's uncond output per batch item (A1111's `last_noise_uncond` when the model predicts eps). */
  readonly uncond: Float32Tensor;
}

/** A CFG denoiser with its own step counter; `step` tells how many calls it has answered. */
export interface CfgDenoiser {
  readonly denoise: Denoiser;
  /**
   * The same call with the CFG scale times `guidance.cfgScaleMultiplier` (A1111's `cond_scale_miltiplier`),
   * answering the uncond rows too. Shares the step counter with `denoise`.
   */
  readonly guided: (x: Float32Tensor, sigma: Float32Array, guidance?: GuidanceOptions) => Promise<GuidedPrediction>;
  /** The uncond rows of the last call (A1111's `last_noise_uncond`); undefined before the first call. */
  readonly lastUncond: Float32Tensor | undefined;
  readonly step: number;
  /** Whether any call padded cond or uncond with the empty prompt (the infotext then says `Pad conds: True`). */
  readonly paddedCondUncond: boolean;
}

export function createCfgDenoiser(inner: ConditionedDenoiser, opts: CfgOptions): CfgDenoiser {
  const batch = opts.conds.length;
  if (opts.unconds.length !== batch) {
    throw new DarkroomError('CFG_BATCH_MISMATCH', `${batch} conds but ${opts.unconds.length} unconds`);
  }
  const state: { step: number; padded: boolean; lastUncond: Float32Tensor | undefined; contexts: Contexts | undefined } = {
    step: 0,
    padded: false,
    lastUncond: undefined,
    contexts: undefined,
  };
  const guided = async (xSampler: Float32Tensor, sigma: Float32Array, guidance: GuidanceOptions = {}): Promise<GuidedPrediction> => {
    const x = opts.inpaint?.beforeDenoising ? blendLatent(xSampler, opts.inpaint.initLatent, opts.inpaint.blend) : xSampler;
    if (x.shape[0] !== batch) {
      throw new DarkroomError('CFG_BATCH_MISMATCH', `latent batch ${x.shape[0]} but ${batch} conditionings`);
    }
    const step = state.step;
    const per = x.data.length / batch;

    // reconstruct_multicond_batch / reconstruct_cond_batch
    const condRows: Float32Tensor[] = [];
    const condSources: RowSource[] = [];
    const condsList: Array<Array<[number, number]>> = [];
    opts.conds.forEach((mc, item) => {
      const list: Array<[number, number]> = [];
      mc.parts.forEach((part, p) => {
        const entry = scheduleIndex(part.schedule, step);
        list.push([condRows.length, part.weight]);
        condRows.push(part.schedule[entry]!.cond);
        condSources.push({ kind: 'cond', item, part: p, entry, padEmpty: 0 });
      });
      condsList.push(list);
    });
    const uncondSources: RowSource[] = [];
    const uncondRows = opts.unconds.map((schedule, item) => {
      const entry = scheduleIndex(schedule, step);
      uncondSources.push({ kind: 'uncond', item, entry, padEmpty: 0 });
      return schedule[entry]!.cond;
    });
    // The stacked (and padded, and joined) contexts only change with a prompt-schedule entry: built once per
    // combination of entries, not per call (about 0.35 MB of copies per call at 77x768 otherwise).
    const key = `${condSources.map((s) => s.kind === 'cond' && s.entry).join(',')}|${uncondSources.map((s) => s.entry).join(',')}`;
    const contexts = state.contexts?.key === key ? state.contexts : (state.contexts = buildContexts(key, condRows, uncondRows, opts));
    if (contexts.padded) state.padded = true;
    if (contexts.condPad !== 0) condSources.forEach((s, i) => (condSources[i] = { ...s, padEmpty: contexts.condPad }));
    if (contexts.uncondPad !== 0) uncondSources.forEach((s, i) => (uncondSources[i] = { ...s, padEmpty: contexts.uncondPad }));
    const tensor = contexts.cond;
    const uncond = contexts.uncond;

    const rowsTotal = condRows.length + batch;
    const cfgScale = opts.cfgScale * (guidance.cfgScaleMultiplier ?? 1);
    const oneCall = tokensOf(tensor) === tokensOf(uncond) && opts.batchCondUncond !== false;
    if (oneCall && inner.epsParts) {
      opts.trace?.onRows?.({ step, rows: [...condSources, ...uncondSources], contextTokens: tokensOf(contexts.joined!) });
      const { denoised: combined, uncondOut } = await fusedEpsCall(inner.epsParts, x, sigma, condsList, rowsTotal, contexts.joined!, cfgScale, opts.imageCond);
      return finish(step, x, sigma, combined, uncondOut);
    }

    // the sampler state repeated per AND part, then once more for the uncond rows
    const xIn = new Float32Array(rowsTotal * per);
    const sigmaIn = new Float32Array(rowsTotal);
    const ic = opts.imageCond;
    const icPer = ic ? ic.data.length / batch : 0;
    const icIn = new Float32Array(rowsTotal * icPer);
    let r = 0;
    condsList.forEach((list, i) => {
      for (let k = 0; k < list.length; k++, r++) {
        xIn.set(x.data.subarray(i * per, (i + 1) * per), r * per);
        sigmaIn[r] = sigma[i]!;
        if (ic) icIn.set(ic.data.subarray(i * icPer, (i + 1) * icPer), r * icPer);
      }
    });
    xIn.set(x.data, r * per);
    sigmaIn.set(sigma, r);
    if (ic) icIn.set(ic.data, r * icPer);
    const xInT = float32([rowsTotal, ...x.shape.slice(1)], xIn);
    const icInT = ic ? float32([rowsTotal, ...ic.shape.slice(1)], icIn) : undefined;

    let xOut: Float32Array;
    const run = async (from: number, to: number, context: Float32Tensor, sources: readonly RowSource[]): Promise<void> => {
      opts.trace?.onRows?.({ step, rows: sources, contextTokens: tokensOf(context) });
      const out = await inner(sliceRows(xInT, from, to), sigmaIn.slice(from, to), context, icInT ? sliceRows(icInT, from, to) : undefined);
      xOut.set(out.data, from * per);
    };
    if (oneCall) {
      // every row in one call: the model's answer is the row block itself (only read below, never kept)
      const sources = [...condSources, ...uncondSources];
      opts.trace?.onRows?.({ step, rows: sources, contextTokens: tokensOf(contexts.joined!) });
      xOut = (await inner(xInT, sigmaIn, contexts.joined!, icInT)).data;
    } else {
      xOut = new Float32Array(rowsTotal * per);
      const chunk = opts.batchCondUncond === false ? batch : batch * 2;
      for (let a = 0; a < condRows.length; a += chunk) {
        const b = Math.min(a + chunk, condRows.length);
        await run(a, b, sliceRows(tensor, a, b), condSources.slice(a, b));
      }
      await run(condRows.length, rowsTotal, uncond, uncondSources);
    }

    // combine_denoised: uncond + sum_j (cond_j - uncond) * (w_j * cfg_scale), in float32, AND order, where
    // cfg_scale is already times the sampler's multiplier (a Python float product, so float64 here)
    const u0 = condRows.length * per;
    const uncondOut = float32(x.shape, xOut.slice(u0, u0 + batch * per));
    const out = new Float32Array(batch * per);
    out.set(xOut.subarray(u0, u0 + batch * per));
    condsList.forEach((list, i) => {
      // one AND part: uncond + (cond - uncond) * scale in one SIMD pass (the same float32 operations)
      if (list.length === 1) {
        const [row, weight] = list[0]!;
        const o = i * per;
        if (combineSimd(xOut.subarray(row * per, (row + 1) * per), xOut.subarray(u0 + o, u0 + o + per), f(weight * cfgScale), out.subarray(o, o + per))) return;
      }
      for (const [row, weight] of list) {
        const scale = f(weight * cfgScale);
        for (let k = 0; k < per; k++) {
          const un = xOut[u0 + i * per + k]!;
          out[i * per + k] = f(out[i * per + k]! + f(f(xOut[row * per + k]! - un) * scale));
        }
      }
    });
    return finish(step, x, sigma, float32(x.shape, out), uncondOut);
  };
  const finish = (step: number, x: Float32Tensor, sigma: Float32Array, combined: Float32Tensor, uncondOut: Float32Tensor): GuidedPrediction => {
    state.lastUncond = uncondOut;
    const denoised = opts.inpaint && !opts.inpaint.beforeDenoising ? blendLatent(combined, opts.inpaint.initLatent, opts.inpaint.blend) : combined;
    // the sampler owns x and overwrites it later: a trace gets its own copies
    opts.trace?.onCfgCall?.({ step, x: float32(x.shape, Float32Array.from(x.data)), sigma: Float32Array.from(sigma), denoised });
    state.step++;
    return { denoised, uncond: uncondOut };
  };
  const denoise: Denoiser = async (x, sigma) => (await guided(x, sigma)).denoised;
  return {
    denoise,
    guided,
    get lastUncond() {
      return state.lastUncond;
    },
    get step() {
      return state.step;
    },
    get paddedCondUncond() {
      return state.padded;
    },
  };
}
