/**
 * The weight change of one network module for one layer, A1111's `calc_updown` per module type followed by
 * `finalize_updown` (reshape, scale, DoRA, multiplier). Computed in float64 on the host and rounded once when
 * added to the float32 weight; A1111 computes in float32, which differs by float rounding only.
 *
 * A shape A1111 would fail on throws LoraLayerError with torch's message: the caller counts it against the
 * network (A1111's "Networks with errors") and leaves the layer as it was.
 */
import { toFloat32, type Float32Tensor, type HostTensor } from '../../tensor.js';
import type { LoraModule } from './bind.js';

export class LoraLayerError extends Error {}

/** A float64 tensor (row-major). */
export interface F64 {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

const numel = (s: readonly number[]): number => s.reduce((a, d) => a * d, 1);

function f64(t: HostTensor): F64 {
  const f = toFloat32(t);
  return { shape: f.shape, data: Float64Array.from(f.data) };
}

function as2d(t: F64): [number, number] {
  const r = t.shape[0] ?? 1;
  return [r, r === 0 ? 0 : t.data.length / r];
}

function reshape(t: F64, shape: readonly number[]): F64 {
  if (numel(shape) !== t.data.length) {
    throw new LoraLayerError(`shape '[${shape.join(', ')}]' is invalid for input of size ${t.data.length}`);
  }
  return { shape: [...shape], data: t.data };
}

/**
 * Working memory reused from one layer's update to the next (and, held by a runner, from one merge to the
 * next): a fresh full-size array costs more in zeroed pages than the arithmetic done in it.
 */
export class F64Scratch {
  private buf = new Float64Array(0);

  /** `n` zeros, valid until the next take. */
  take(n: number): Float64Array {
    if (this.buf.length < n) this.buf = new Float64Array(n);
    const v = this.buf.subarray(0, n);
    v.fill(0);
    return v;
  }
}

/**
 * (m,k) @ (k,n). Each output element is summed over k in order, one rounding per product and per addition (as a
 * plain i-p-j loop would); four products are added per load and store of the output element, which is what
 * makes the up @ down product of a full-size layer affordable.
 */
function mm(a: Float64Array, m: number, k: number, b: Float64Array, k2: number, n: number, scratch?: F64Scratch): Float64Array {
  if (k !== k2) throw new LoraLayerError(`mat1 and mat2 shapes cannot be multiplied (${m}x${k} and ${k2}x${n})`);
  const out = scratch ? scratch.take(m * n) : new Float64Array(m * n);
  const k4 = k - (k % 4);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    const ar = i * k;
    let p = 0;
    for (; p < k4; p += 4) {
      const a0 = a[ar + p]!;
      const a1 = a[ar + p + 1]!;
      const a2 = a[ar + p + 2]!;
      const a3 = a[ar + p + 3]!;
      const b0 = p * n;
      const b1 = b0 + n;
      const b2 = b1 + n;
      const b3 = b2 + n;
      for (let j = 0; j < n; j++) {
        let t = out[row + j]!;
        t += a0 * b[b0 + j]!;
        t += a1 * b[b1 + j]!;
        t += a2 * b[b2 + j]!;
        t += a3 * b[b3 + j]!;
        out[row + j] = t;
      }
    }
    for (; p < k; p++) {
      const av = a[ar + p]!;
      const brow = p * n;
      for (let j = 0; j < n; j++) out[row + j] += av * b[brow + j]!;
    }
  }
  return out;
}

function matmul(a: F64, b: F64): F64 {
  const [m, k] = as2d(a);
  const [k2, n] = as2d(b);
  return { shape: [m, n], data: mm(a.data, m, k, b.data, k2, n) };
}

/** Python's `[:n]` bound for a length. */
function sliceEnd(n: number, len: number): number {
  return n < 0 ? Math.max(0, len + n) : Math.min(n, len);
}

/** `lyco_helpers.rebuild_conventional` (with `dyn_dim`): (up @ down).reshape(shape). */
function rebuildConventional(up: F64, down: F64, shape: readonly number[], dyn: number | null, scratch?: F64Scratch): F64 {
  let [o, r] = as2d(up);
  let [r2, i] = as2d(down);
  let u = up.data;
  let d = down.data;
  if (dyn !== null) {
    const ru = sliceEnd(dyn, r);
    const rd = sliceEnd(dyn, r2);
    const nu = new Float64Array(o * ru);
    for (let a = 0; a < o; a++) for (let b = 0; b < ru; b++) nu[a * ru + b] = u[a * r + b]!;
    u = nu;
    r = ru;
    d = d.slice(0, rd * i);
    r2 = rd;
  }
  return reshape({ shape: [o, i], data: mm(u, o, r, d, r2, i, scratch) }, shape);
}

/** `lyco_helpers.make_weight_cp`: einsum('i j k l, j r -> i r k l', t, wb) then ('i j k l, i r -> r j k l', ., wa). */
function makeWeightCp(t: F64, wa: F64, wb: F64): F64 {
  const [I, J, K, L] = t.shape as [number, number, number, number];
  const [jb, R] = as2d(wb);
  const [ia, P] = as2d(wa);
  if (jb !== J || ia !== I) throw new LoraLayerError(`einsum(): operands do not broadcast with remapped shapes`);
  const kl = K * L;
  const temp = new Float64Array(I * R * kl);
  for (let i = 0; i < I; i++)
    for (let j = 0; j < J; j++)
      for (let r = 0; r < R; r++) {
        const w = wb.data[j * R + r]!;
        for (let x = 0; x < kl; x++) temp[(i * R + r) * kl + x] += t.data[(i * J + j) * kl + x]! * w;
      }
  const out = new Float64Array(P * R * kl);
  for (let i = 0; i < I; i++)
    for (let p = 0; p < P; p++) {
      const w = wa.data[i * P + p]!;
      for (let r = 0; r < R; r++) for (let x = 0; x < kl; x++) out[(p * R + r) * kl + x] += temp[(i * R + r) * kl + x]! * w;
    }
  return { shape: [P, R, K, L], data: out };
}

/** `torch.kron` of two matrices (a 4-D second factor is flattened: the same element order). */
function kron(a: F64, b: F64): F64 {
  const [m, n] = as2d(a);
  const [p, q] = as2d(b);
  const out = new Float64Array(m * p * n * q);
  const cols = n * q;
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      const av = a.data[i * n + j]!;
      for (let k = 0; k < p; k++) for (let l = 0; l < q; l++) out[(i * p + k) * cols + j * q + l] = av * b.data[k * q + l]!;
    }
  return { shape: [m * p, cols], data: out };
}

function scaleInPlace(t: F64, s: number): F64 {
  if (s !== 1) for (let i = 0; i < t.data.length; i++) t.data[i] *= s;
  return t;
}

/** Inverse of an n x n matrix by Gauss-Jordan with partial pivoting. */
function inverse(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[piv * n + c]!)) piv = r;
    if (m[piv * n + c] === 0) throw new LoraLayerError('linalg.inv: The diagonal element is zero, the inversion could not be completed');
    if (piv !== c) {
      for (let k = 0; k < n; k++) {
        [m[c * n + k], m[piv * n + k]] = [m[piv * n + k]!, m[c * n + k]!];
        [inv[c * n + k], inv[piv * n + k]] = [inv[piv * n + k]!, inv[c * n + k]!];
      }
    }
    const d = m[c * n + c]!;
    for (let k = 0; k < n; k++) {
      m[c * n + k] /= d;
      inv[c * n + k] /= d;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      if (f === 0) continue;
      for (let k = 0; k < n; k++) {
        m[r * n + k] -= f * m[c * n + k]!;
        inv[r * n + k] -= f * inv[c * n + k]!;
      }
    }
  }
  return inv;
}

function oftUpdown(mod: LoraModule, W: F64): F64 {
  const isR = !mod.w.has('oft_blocks');
  const blocks = f64((mod.w.get('oft_blocks') ?? mod.w.get('oft_diag'))!);
  const outDim = W.shape[0]!;
  const dim = mod.dim!;
  const blockSize = isR ? dim : Math.trunc(outDim / dim);
  const numBlocks = isR ? Math.trunc(outDim / dim) : dim;
  const [k, n, n2] = blocks.shape as [number, number, number];
  if (n !== n2 || n !== blockSize || k !== numBlocks) {
    throw new LoraLayerError(`shape mismatch: OFT blocks [${blocks.shape.join(', ')}] for ${outDim} output rows`);
  }
  let R = blocks.data;
  if (!isR) {
    const Q = new Float64Array(k * n * n);
    for (let b = 0; b < k; b++)
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Q[(b * n + i) * n + j] = blocks.data[(b * n + i) * n + j]! - blocks.data[(b * n + j) * n + i]!;
    const constraint = (mod.alpha ?? 0) * outDim;
    if (constraint !== 0) {
      let norm = 0;
      for (const v of Q) norm += v * v;
      norm = Math.sqrt(norm);
      const f = (Math.min(norm, constraint) + 1e-8) / (norm + 1e-8);
      for (let i = 0; i < Q.length; i++) Q[i] *= f;
    }
    R = new Float64Array(k * n * n);
    for (let b = 0; b < k; b++) {
      const ipq = new Float64Array(n * n);
      const imq = new Float64Array(n * n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          const q = Q[(b * n + i) * n + j]!;
          ipq[i * n + j] = (i === j ? 1 : 0) + q;
          imq[i * n + j] = (i === j ? 1 : 0) - q;
        }
      R.set(mm(ipq, n, n, inverse(imq, n), n, n), b * n * n);
    }
  }
  // new block k = R_k^T @ W_k over the k-th group of n rows.
  const Wd = W.data;
  const inner = Wd.length / outDim;
  const out = new Float64Array(Wd.length);
  for (let b = 0; b < k; b++)
    for (let m = 0; m < n; m++) {
      const orow = (b * n + m) * inner;
      for (let i = 0; i < n; i++) {
        const r = R[(b * n + i) * n + m]!;
        if (r === 0) continue;
        const wrow = (b * n + i) * inner;
        for (let x = 0; x < inner; x++) out[orow + x] += r * Wd[wrow + x]!;
      }
    }
  for (let i = 0; i < out.length; i++) out[i] -= Wd[i]!;
  return { shape: W.shape, data: out };
}

/** The raw update of one module and the output shape A1111 declares for it, before finalize_updown. */
function rawUpdown(mod: LoraModule, W: F64, dyn: number | null, scratch?: F64Scratch): { updown: F64; shape: readonly number[]; exBias?: F64 } {
  const w = (k: string): F64 => f64(mod.w.get(k)!);
  const has = (k: string): boolean => mod.w.has(k);
  const conv = mod.target.kind === 'conv';
  switch (mod.type) {
    case 'lora': {
      const up = w('lora_up.weight');
      let down = w('lora_down.weight');
      // create_module: a conv's 2-D down becomes (r, in, 1, 1); linear targets flatten to 2-D.
      if (conv && down.shape.length === 2) down = { shape: [...down.shape, 1, 1], data: down.data };
      const shape = conv ? [up.shape[0]!, down.shape[1]!] : [up.shape[0]!, as2d(down)[1]];
      if (has('lora_mid.weight')) {
        const mid = w('lora_mid.weight');
        const [I] = as2d(up);
        const [, J] = as2d(down);
        const [N, M, K, L] = mid.shape as [number, number, number, number];
        const out = new Float64Array(I * J * K * L);
        const kl = K * L;
        const upR = as2d(up)[1];
        for (let i = 0; i < I; i++)
          for (let nn = 0; nn < N; nn++) {
            const u = up.data[i * upR + nn]!;
            for (let m = 0; m < M; m++) {
              for (let j = 0; j < J; j++) {
                const f = u * down.data[m * J + j]!;
                for (let x = 0; x < kl; x++) out[(i * J + j) * kl + x] += mid.data[(nn * M + m) * kl + x]! * f;
              }
            }
          }
        return { updown: { shape: [I, J, K, L], data: out }, shape: [...shape, K, L] };
      }
      const full = conv && down.shape.length === 4 ? [...shape, down.shape[2]!, down.shape[3]!] : shape;
      return { updown: rebuildConventional(up, down, full, dyn, scratch), shape: full };
    }
    case 'hada': {
      const w1a = w('hada_w1_a');
      const w1b = w('hada_w1_b');
      const w2a = w('hada_w2_a');
      const w2b = w('hada_w2_b');
      let shape: number[] = [w1a.shape[0]!, as2d(w1b)[1]];
      let u1: F64;
      if (has('hada_t1')) {
        const t1 = w('hada_t1');
        shape = [w1a.shape[1]!, w1b.shape[1]!, ...t1.shape.slice(2)];
        u1 = makeWeightCp(t1, w1a, w1b);
      } else {
        if (w1b.shape.length === 4) shape = [w1a.shape[0]!, w1b.shape[1]!, ...w1b.shape.slice(2)];
        u1 = rebuildConventional(w1a, w1b, shape, null);
      }
      const u2 = has('hada_t2') ? makeWeightCp(w('hada_t2'), w2a, w2b) : rebuildConventional(w2a, w2b, shape, null);
      if (u1.data.length !== u2.data.length) throw new LoraLayerError(`The size of tensor a (${u1.data.length}) must match the size of tensor b (${u2.data.length})`);
      const data = new Float64Array(u1.data.length);
      for (let i = 0; i < data.length; i++) data[i] = u1.data[i]! * u2.data[i]!;
      return { updown: { shape: u1.shape, data }, shape };
    }
    case 'lokr': {
      const w1 = has('lokr_w1') ? w('lokr_w1') : matmul(w('lokr_w1_a'), w('lokr_w1_b'));
      const w2 = has('lokr_w2')
        ? w('lokr_w2')
        : has('lokr_t2')
          ? makeWeightCp(w('lokr_t2'), w('lokr_w2_a'), w('lokr_w2_b'))
          : matmul(w('lokr_w2_a'), w('lokr_w2_b'));
      const shape = W.shape.length === 4 ? W.shape : [w1.shape[0]! * w2.shape[0]!, (w1.shape[1] ?? 1) * (w2.shape[1] ?? 1)];
      return { updown: reshape(kron(w1, w2), shape), shape };
    }
    case 'ia3': {
      const v = w('weight');
      const flag = mod.w.get('on_input')!;
      const onInput = flag.dtype === 'bool' || flag.dtype === 'uint8' ? (flag.data as Uint8Array)[0] !== 0 : f64(flag).data[0] !== 0;
      if (W.shape.length !== 2) throw new LoraLayerError(`IA3 on a ${W.shape.length}-D weight`);
      const [o, i] = W.shape as [number, number];
      if (v.data.length !== (onInput ? i : o)) {
        throw new LoraLayerError(`The size of tensor a (${onInput ? i : o}) must match the size of tensor b (${v.data.length}) at non-singleton dimension ${onInput ? 1 : 0}`);
      }
      const data = new Float64Array(o * i);
      const Wd = W.data;
      for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) data[a * i + b] = Wd[a * i + b]! * v.data[onInput ? b : a]!;
      return { updown: { shape: [o, i], data }, shape: onInput ? [i, o] : [o, i] };
    }
    case 'full': {
      const d = w('diff');
      return { updown: d, shape: d.shape, ...(has('diff_b') ? { exBias: w('diff_b') } : {}) };
    }
    case 'norm': {
      const d = w('w_norm');
      return { updown: d, shape: d.shape, exBias: w('b_norm') };
    }
    case 'glora': {
      const a1 = w('a1.weight');
      const a2 = w('a2.weight');
      const b1 = w('b1.weight');
      const b2 = w('b2.weight');
      if (W.shape.length !== 2) throw new LoraLayerError(`GLoRA on a ${W.shape.length}-D weight`);
      const left = matmul(b2, b1);
      const right = matmul(matmul(W, a2), a1);
      if (left.data.length !== right.data.length) throw new LoraLayerError('GLoRA factors do not add up');
      const data = new Float64Array(left.data.length);
      for (let i = 0; i < data.length; i++) data[i] = left.data[i]! + right.data[i]!;
      return { updown: { shape: left.shape, data }, shape: [a1.shape[0]!, b1.shape[1] ?? 1] };
    }
    case 'oft':
      return { updown: oftUpdown(mod, W), shape: W.shape };
  }
}

/**
 * `calc_updown` then `finalize_updown` for the weight `current` (the layer as already patched by earlier
 * networks): the tensor to add, in `current`'s shape when the element counts agree, and the bias change.
 * With `scratch` the update may live in it: use it before the next take from the same scratch.
 */
export function moduleUpdown(
  mod: LoraModule,
  current: Float32Tensor,
  multiplier: number,
  dyn: number | null,
  scratch?: F64Scratch,
): { updown: F64; exBias?: F64 } {
  const W = float64View(current);
  const raw = rawUpdown(mod, W, dyn, scratch);
  let updown = raw.updown;
  if (raw.shape.length === 4) updown = reshape(updown, raw.shape);
  if (updown.data.length === current.data.length) updown = { shape: W.shape, data: updown.data };
  // rawUpdown's tensors are its own (every module tensor is read through a fresh float64 copy): scaled in place.
  const exBias = raw.exBias ? scaleInPlace(raw.exBias, multiplier) : undefined;
  updown = scaleInPlace(updown, mod.scale);
  if (mod.doraScale) updown = weightDecompose(updown, W, mod.doraScale);
  return { updown: scaleInPlace(updown, multiplier), ...(exBias ? { exBias } : {}) };
}

/** A float32 weight as F64, its float64 copy made only when a module type reads the values (LoRA never does). */
function float64View(t: Float32Tensor): F64 {
  let data: Float64Array | undefined;
  return {
    shape: t.shape,
    get data(): Float64Array {
      data ??= Float64Array.from(t.data);
      return data;
    },
  };
}

/** DoRA (`apply_weight_decompose`): M = W + updown rescaled per input column to dora_scale; returns M' - W. */
function weightDecompose(updown: F64, W: F64, doraScale: Float32Tensor): F64 {
  const merged = addBroadcast(W, updown, 'a');
  const [o, i] = [W.shape[0]!, W.shape[1]!];
  const Wd = W.data;
  const inner = Wd.length / (o * i);
  const norms = new Float64Array(i);
  for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let x = 0; x < inner; x++) norms[b] += merged[(a * i + b) * inner + x]! ** 2;
  if (doraScale.data.length !== i) throw new LoraLayerError(`The size of tensor a (${i}) must match the size of tensor b (${doraScale.data.length}) at non-singleton dimension 1`);
  const out = new Float64Array(Wd.length);
  for (let a = 0; a < o; a++)
    for (let b = 0; b < i; b++) {
      const f = doraScale.data[b]! / Math.sqrt(norms[b]!);
      for (let x = 0; x < inner; x++) {
        const idx = (a * i + b) * inner + x;
        out[idx] = merged[idx]! * f - Wd[idx]!;
      }
    }
  return { shape: W.shape, data: out };
}

/**
 * base + delta rounded to float32 (one rounding, as the float64 sum then its float32 copy), written straight
 * into the result when the shapes agree; otherwise through addBroadcast.
 */
export function addToFloat32(base: Float32Tensor, delta: F64, order: 'a' | 'b' = 'b'): Float32Array {
  const bs = base.shape;
  const ds = delta.shape;
  if (!(bs.length === ds.length && bs.every((d, k) => d === ds[k]))) return Float32Array.from(addBroadcast(base, delta, order));
  const out = new Float32Array(base.data.length);
  const b = base.data;
  const d = delta.data;
  for (let k = 0; k < out.length; k++) out[k] = b[k]! + d[k]!;
  return out;
}

/**
 * base + delta with torch's broadcasting, where the result must keep base's shape (an in-place add). `order`
 * says which operand torch names "tensor a" in its error message (A1111's `weight + updown` names the weight first).
 */
export function addBroadcast(base: F64 | Float32Tensor, delta: F64, order: 'a' | 'b' = 'b'): Float64Array {
  const bs = base.shape;
  const ds = delta.shape;
  const out = Float64Array.from(base.data as ArrayLike<number>);
  if (bs.length === ds.length && bs.every((d, k) => d === ds[k])) {
    for (let k = 0; k < out.length; k++) out[k] += delta.data[k]!;
    return out;
  }
  const nd = Math.max(bs.length, ds.length);
  const B = [...Array(nd - bs.length).fill(1), ...bs] as number[];
  const D = [...Array(nd - ds.length).fill(1), ...ds] as number[];
  for (let k = nd - 1; k >= 0; k--) {
    if (D[k] !== B[k] && D[k] !== 1 && B[k] !== 1) {
      const [a, b] = order === 'a' ? [D[k], B[k]] : [B[k], D[k]];
      throw new LoraLayerError(`The size of tensor a (${a}) must match the size of tensor b (${b}) at non-singleton dimension ${k}`);
    }
    if (D[k] !== B[k] && B[k] === 1) {
      throw new LoraLayerError(`output with shape [${bs.join(', ')}] doesn't match the broadcast shape [${B.map((x, j) => Math.max(x, D[j]!)).join(', ')}]`);
    }
  }
  if (nd > bs.length) throw new LoraLayerError(`output with shape [${bs.join(', ')}] doesn't match the broadcast shape [${D.join(', ')}]`);
  // Strides of delta over base's index space (0 where delta is broadcast).
  const strides = new Array<number>(nd).fill(0);
  let s = 1;
  for (let k = nd - 1; k >= 0; k--) {
    strides[k] = D[k] === 1 ? 0 : s;
    s *= D[k]!;
  }
  const idx = new Array<number>(nd).fill(0);
  for (let k = 0; k < out.length; k++) {
    let off = 0;
    for (let j = 0; j < nd; j++) off += idx[j]! * strides[j]!;
    out[k] += delta.data[off]!;
    for (let j = nd - 1; j >= 0; j--) {
      if (++idx[j]! < B[j]!) break;
      idx[j] = 0;
    }
  }
  return out;
}
