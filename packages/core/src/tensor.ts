/** Plain host-side tensors shared by every module of the engine. Row-major (C order), NCHW for images. */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

export interface TypedArrayFor {
  float32: Float32Array;
  float16: Uint16Array; // raw IEEE half bits
  bfloat16: Uint16Array; // raw bfloat16 bits
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export interface HostTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayFor[D];
}

export type Float32Tensor = HostTensor<'float32'>;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function float32(shape: readonly number[], data?: Float32Array): Float32Tensor {
  const n = numel(shape);
  if (data && data.length !== n) {
    throw new RangeError(`float32 tensor of shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  }
  return { dtype: 'float32', shape: [...shape], data: data ?? new Float32Array(n) };
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'float64':
    case 'int64':
      return 8;
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'int8':
    case 'uint8':
    case 'bool':
      return 1;
  }
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 half (raw bits) to float32 value; exact, subnormals and infinities included. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float32 to IEEE half bits, round-to-nearest-even (as torch's .half()). */
export function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

export function bfloat16ToFloat(b: number): number {
  u32Scratch[0] = b << 16;
  return f32Scratch[0]!;
}

let halfValues: Float32Array | undefined;

/** halfToFloat of every one of the 65536 half bit patterns (256 KiB, made on first use). */
function halfTable(): Float32Array {
  if (!halfValues) {
    halfValues = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfValues[h] = halfToFloat(h);
  }
  return halfValues;
}

/** Upcasts any floating tensor to float32 (F16/BF16 checkpoints are computed in float32 on CPU). */
export function toFloat32(t: HostTensor): Float32Tensor {
  switch (t.dtype) {
    case 'float32':
      return t as Float32Tensor;
    case 'float16': {
      // One lookup per value instead of two powers: what is left of a full-size checkpoint's conversion is mostly
      // the float32 copy's fresh pages.
      const table = halfTable();
      const src = t.data as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
      return float32(t.shape, out);
    }
    case 'bfloat16': {
      // bfloat16 is the top half of a float32: widen the bits, no arithmetic
      const src = t.data as Uint16Array;
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
      return float32(t.shape, out);
    }
    case 'float64':
      return float32(t.shape, Float32Array.from(t.data as Float64Array));
    default:
      throw new TypeError(`cannot convert a ${t.dtype} tensor to float32`);
  }
}
