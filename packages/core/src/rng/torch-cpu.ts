/**
 * torch.randn on the CPU (torch.Generator / torch.manual_seed): mt19937 uniforms turned into normals by
 * Box-Muller in blocks of 16, float32. Two kernels exist and differ in the last bits: 'avx2' (every x86-64 build
 * with AVX2, what A1111 users on PCs get) uses avx_mathfun's polynomial log/sincos; 'default' (the portable kernel,
 * e.g. Apple Silicon) uses libm logf/cosf/sinf.
 */
import { MT19937 } from './mt19937.js';
import { log256, sincos256 } from './avx-mathfun.js';
import { glibcCosf, glibcLogf, glibcSinf } from './libm-f32.js';

export type TorchCpuKernel = 'avx2' | 'default';

const f = Math.fround;
const TWO_PI_F32 = f(2 * Math.PI);
const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M53 = 2 ** -53;

/** Whether the AVX2 kernel fuses multiply-adds (GCC contracts the intrinsics' mul+add into FMA under -mfma). */
export const AVX2_FUSED_MULADD = true;

/** A torch CPU generator: one mt19937 stream, plus torch's cached second normal of the double-precision path. */
export class TorchCpuGenerator {
  private readonly engine: MT19937;
  private cachedDoubleNormal: number | undefined;

  constructor(
    seed: number | bigint,
    readonly kernel: TorchCpuKernel = 'avx2',
  ) {
    // torch seeds mt19937 with the low 32 bits of the 64-bit seed
    this.engine = new MT19937(Number(BigInt.asUintN(32, BigInt(seed))));
  }

  private uniformF32(): number {
    return (this.engine.nextU32() & 0xffffff) * TWO_POW_M24;
  }

  private uniformF64(): number {
    const hi = this.engine.nextU32();
    const lo = this.engine.nextU32();
    // (hi << 32 | lo) & (2^53 - 1), times 2^-53
    return ((hi & 0x1fffff) * 2 ** 32 + lo) * TWO_POW_M53;
  }

  /** torch.randn(n, generator=this) as float32 values in order. */
  randn(n: number): Float32Array {
    const out = new Float32Array(n);
    if (n >= 16) {
      for (let i = 0; i < n; i++) out[i] = this.uniformF32();
      for (let i = 0; i + 16 <= n; i += 16) this.fill16(out, i);
      if (n % 16 !== 0) {
        const start = n - 16;
        for (let i = 0; i < 16; i++) out[start + i] = this.uniformF32();
        this.fill16(out, start);
      }
      return out;
    }
    // small tensors: torch's scalar path, a double-precision Box-Muller whose second value is cached on the generator
    for (let i = 0; i < n; i++) out[i] = this.normalF64();
    return out;
  }

  /**
   * Advances the generator exactly as `randn(n)` would, without the normal transform: the vectorized path
   * consumes n uniforms plus 16 more when n is not a multiple of 16; small draws go through the scalar path.
   */
  skip(n: number): void {
    if (n < 16) {
      this.randn(n);
      return;
    }
    this.engine.skip(n % 16 === 0 ? n : n + 16);
  }

  private normalF64(): number {
    if (this.cachedDoubleNormal !== undefined) {
      const v = this.cachedDoubleNormal;
      this.cachedDoubleNormal = undefined;
      return v;
    }
    const u1 = this.uniformF64();
    const u2 = this.uniformF64();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.cachedDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  private fill16(data: Float32Array, i: number): void {
    if (this.kernel === 'avx2') {
      for (let j = 0; j < 8; j++) {
        const u1 = f(1 - data[i + j]!);
        const u2 = data[i + j + 8]!;
        const radius = f(Math.sqrt(f(-2 * log256(u1, AVX2_FUSED_MULADD))));
        const theta = f(TWO_PI_F32 * u2);
        const [s, c] = sincos256(theta, AVX2_FUSED_MULADD);
        data[i + j] = radius * c;
        data[i + j + 8] = radius * s;
      }
      return;
    }
    for (let j = 0; j < 8; j++) {
      const u1 = f(1 - data[i + j]!);
      const u2 = data[i + j + 8]!;
      const radius = f(Math.sqrt(f(-2 * logf(u1))));
      const theta = f(2.0 * Math.PI * u2);
      data[i + j] = radius * cosf(theta);
      data[i + j + 8] = radius * sinf(theta);
    }
  }
}

/** Whether glibc's FMA builds of logf/sinf/cosf are the ones matched (x86-64 with FMA dispatches to them). */
export const LIBM_FUSED = true;

const logf = (x: number): number => glibcLogf(x, LIBM_FUSED);
const cosf = (x: number): number => glibcCosf(x, LIBM_FUSED);
const sinf = (x: number): number => glibcSinf(x, LIBM_FUSED);
