/**
 * The fused CFG combine of one batch item with one AND part (the common case) as a WebAssembly SIMD loop, four
 * values per instruction (and the c_in scaling before it, `scaleSimd`):
 *
 *   un  = x + eps_uncond * c_out
 *   out = un + ((x + eps_cond * c_out) - un) * scale
 *
 * Every f32x4 add, sub and mul is the float32 operation correctly rounded, which is what `Math.fround` of the
 * same float64 operation on float32 inputs gives (float64 holds more than twice float32's precision, so the
 * double rounding never differs), so the values are the same bits as the JavaScript loop (a NaN's payload
 * aside). Assembled here from its instructions (text format beside each line); where WebAssembly SIMD is not
 * available, `cfgCombineSimd` returns false and the caller runs its JavaScript loop.
 */
import { get, instantiateWasm, name, section, set, tee, uleb, type WasmMemory } from '../runtime/wasm-encoding.js';

const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const V128_LOAD = [...simd(0x00), 0x04, 0x00]; // align 2^4, offset 0
const V128_STORE = [...simd(0x0b), 0x04, 0x00];
const F32X4_SPLAT = simd(0x13);
const F32X4_ADD = simd(0xe4);
const F32X4_SUB = simd(0xe5);
const F32X4_MUL = simd(0xe6);
const I32_ADD = 0x6a;
const I32_LT_U = 0x49;
const I32_EQZ = 0x45;
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const BR_IF_0 = [0x0d, 0x00];
const END = 0x0b;

// params: 0 x, 1 eps cond, 2 eps uncond, 3 un, 4 out (byte addresses), 5 bytes (a multiple of 16), 6 c_out,
// 7 scale; locals: 8 byte offset p (i32), 9 c_out x4, 10 scale x4, 11 x, 12 un (v128)
const [X, EC, EU, UN, OUT, BYTES, COUT, SCALE, P, CV, SV, XV, UV] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const at = (base: number): number[] => [...get(base), ...get(P), I32_ADD];

// prettier-ignore
const body = [
  0x02, 0x01, 0x7f, 0x04, 0x7b,                                     // 1 i32 local, 4 v128 locals
  ...get(COUT), ...F32X4_SPLAT, ...set(CV),
  ...get(SCALE), ...F32X4_SPLAT, ...set(SV),
  ...BLOCK,
  ...get(BYTES), I32_EQZ, ...BR_IF_0,                               // nothing to do
  ...LOOP,
  ...at(X), ...V128_LOAD, ...set(XV),                               //   xv = x[p]
  ...get(XV), ...at(EU), ...V128_LOAD, ...get(CV), ...F32X4_MUL,    //   uv = xv + eu[p] * c_out
  ...F32X4_ADD, ...set(UV),
  ...at(UN), ...get(UV), ...V128_STORE,                             //   un[p] = uv
  ...at(OUT),                                                       //   out[p] =
  ...get(XV), ...at(EC), ...V128_LOAD, ...get(CV), ...F32X4_MUL,    //     (xv + ec[p] * c_out
  ...F32X4_ADD, ...get(UV), ...F32X4_SUB,                           //      - uv)
  ...get(SV), ...F32X4_MUL, ...get(UV), ...F32X4_ADD,               //     * scale + uv
  ...V128_STORE,
  ...get(P), 0x41, 0x10, I32_ADD, ...tee(P), ...get(BYTES), I32_LT_U, ...BR_IF_0, // br_if ((p += 16) < bytes)
  END,
  END,
  END,
];

// scale: params 0 src, 1 dst (byte addresses), 2 bytes (a multiple of 16), 3 c; locals 4 p, 5 c x4
const [SRC, DST, SBYTES, C, SP, SCV] = [0, 1, 2, 3, 4, 5];
// prettier-ignore
const scaleBody = [
  0x02, 0x01, 0x7f, 0x01, 0x7b,                                     // 1 i32 local, 1 v128 local
  ...get(C), ...F32X4_SPLAT, ...set(SCV),
  ...BLOCK,
  ...get(SBYTES), I32_EQZ, ...BR_IF_0,
  ...LOOP,
  ...get(DST), ...get(SP), I32_ADD,                                 //   dst[p] =
  ...get(SRC), ...get(SP), I32_ADD, ...V128_LOAD,                   //     src[p]
  ...get(SCV), ...F32X4_MUL, ...V128_STORE,                         //     * c
  ...get(SP), 0x41, 0x10, I32_ADD, ...tee(SP), ...get(SBYTES), I32_LT_U, ...BR_IF_0,
  END,
  END,
  END,
];

// combine: params 0 cond, 1 uncond, 2 out (byte addresses), 3 bytes (a multiple of 16), 4 scale; locals 5 p,
// 6 scale x4, 7 uncond (v128)
const [CC, CU, COUTP, CBYTES, CSCALE, CP, CSV, CUV] = [0, 1, 2, 3, 4, 5, 6, 7];
// prettier-ignore
const combineBody = [
  0x02, 0x01, 0x7f, 0x02, 0x7b,                                     // 1 i32 local, 2 v128 locals
  ...get(CSCALE), ...F32X4_SPLAT, ...set(CSV),
  ...BLOCK,
  ...get(CBYTES), I32_EQZ, ...BR_IF_0,
  ...LOOP,
  ...get(COUTP), ...get(CP), I32_ADD,                               //   out[p] =
  ...get(CC), ...get(CP), I32_ADD, ...V128_LOAD,                    //     (cond[p]
  ...get(CU), ...get(CP), I32_ADD, ...V128_LOAD, ...tee(CUV),       //      - uncond[p])
  ...F32X4_SUB, ...get(CSV), ...F32X4_MUL,                          //     * scale
  ...get(CUV), ...F32X4_ADD, ...V128_STORE,                         //     + uncond[p]
  ...get(CP), 0x41, 0x10, I32_ADD, ...tee(CP), ...get(CBYTES), I32_LT_U, ...BR_IF_0,
  END,
  END,
  END,
];

// prettier-ignore
const moduleBytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,                   // \0asm, version 1
  ...section(1, [
    0x03,
    0x60, 0x08, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x7d, 0x00, // type 0: (6 x i32, 2 x f32) -> ()
    0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7d, 0x00,                       // type 1: (3 x i32, f32) -> ()
    0x60, 0x05, 0x7f, 0x7f, 0x7f, 0x7f, 0x7d, 0x00,                 // type 2: (4 x i32, f32) -> ()
  ]),
  ...section(3, [0x03, 0x00, 0x01, 0x02]),                          // cfg: type 0, scale: type 1, combine: type 2
  ...section(5, [0x01, 0x00, 0x05]),                                // memory: 5 pages, growable
  ...section(7, [
    0x04, ...name('mem'), 0x02, 0x00, ...name('cfg'), 0x00, 0x00, ...name('scale'), 0x00, 0x01, ...name('combine'), 0x00, 0x02,
  ]),
  ...section(10, [0x03, ...uleb(body.length), ...body, ...uleb(scaleBody.length), ...scaleBody, ...uleb(combineBody.length), ...combineBody]),
]);

interface Kernel {
  readonly memory: WasmMemory;
  readonly cfg: (x: number, ec: number, eu: number, un: number, out: number, bytes: number, cOut: number, scale: number) => void;
  readonly scale: (src: number, dst: number, bytes: number, c: number) => void;
  readonly combine: (cond: number, uncond: number, out: number, bytes: number, scale: number) => void;
}

let kernel: Kernel | null | undefined;

function loadKernel(): Kernel | null {
  if (kernel !== undefined) return kernel;
  kernel = null;
  if (process.env.DARKROOM_NO_SIMD === '1') return kernel;
  const exports = instantiateWasm(moduleBytes);
  if (exports) {
    kernel = { memory: exports.mem as WasmMemory, cfg: exports.cfg as Kernel['cfg'], scale: exports.scale as Kernel['scale'], combine: exports.combine as Kernel['combine'] };
  }
  return kernel;
}

/**
 * un[k] = x[k] + eu[k] * cOut and out[k] = un[k] + ((x[k] + ec[k] * cOut) - un[k]) * scale, every operation in
 * float32 (cOut and scale are float32 values). False (nothing written) where WebAssembly SIMD is unavailable.
 */
export function cfgCombineSimd(
  x: Float32Array,
  ec: Float32Array,
  eu: Float32Array,
  cOut: number,
  scale: number,
  un: Float32Array,
  out: Float32Array,
): boolean {
  const k = loadKernel();
  const n = x.length;
  if (!k || n % 4 !== 0) return false;
  const bytes = n * 4;
  const mem = memoryFor(k, 5 * n);
  mem.set(x, 0);
  mem.set(ec, n);
  mem.set(eu, 2 * n);
  k.cfg(0, bytes, 2 * bytes, 3 * bytes, 4 * bytes, bytes, cOut, scale);
  un.set(mem.subarray(3 * n, 4 * n));
  out.set(mem.subarray(4 * n, 5 * n));
  return true;
}

/** A float32 view of the kernel's memory, grown to hold `floats` values. */
function memoryFor(k: Kernel, floats: number): Float32Array {
  const need = floats * 4;
  const have = k.memory.buffer.byteLength;
  if (need > have) k.memory.grow(Math.ceil((need - have) / 65536));
  return new Float32Array(k.memory.buffer, 0, floats);
}

/** dst[k] = src[k] * c in float32 (c a float32 value). False (nothing written) where WebAssembly SIMD is unavailable. */
export function scaleSimd(src: Float32Array, c: number, dst: Float32Array): boolean {
  const k = loadKernel();
  const n = src.length;
  if (!k || n % 4 !== 0) return false;
  const mem = memoryFor(k, 2 * n);
  mem.set(src, 0);
  k.scale(0, n * 4, n * 4, c);
  dst.set(mem.subarray(n, 2 * n));
  return true;
}

/**
 * out[k] = uncond[k] + (cond[k] - uncond[k]) * scale in float32 (A1111's combine_denoised for one AND part; scale
 * a float32 value). False (nothing written) where WebAssembly SIMD is unavailable.
 */
export function combineSimd(cond: Float32Array, uncond: Float32Array, scale: number, out: Float32Array): boolean {
  const k = loadKernel();
  const n = cond.length;
  if (!k || n % 4 !== 0) return false;
  const mem = memoryFor(k, 3 * n);
  mem.set(cond, 0);
  mem.set(uncond, n);
  k.combine(0, n * 4, 2 * n * 4, n * 4, scale);
  out.set(mem.subarray(2 * n, 3 * n));
  return true;
}
