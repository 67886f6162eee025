/**
 * The integer half of the NV source's Philox4x32-10 as a tiny WebAssembly function, where a 32x32->64 multiply
 * is one i64.mul instead of four 16-bit partial products. It only produces the counters' first two output words;
 * the float64 Box-Muller stays in JavaScript (Math.log / Math.sin), so the normals are the same bits either way.
 * The module is assembled here from its instructions (below, with the text format beside each line), so there is
 * no binary blob and no build step. Where WebAssembly is unavailable, `philoxWords` returns undefined and the
 * caller uses the JavaScript rounds.
 */
import { get, instantiateWasm, name, section, set, tee, uleb, type WasmMemory } from '../../runtime/wasm-encoding.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** Signed LEB128, as i32.const / i64.const immediates are encoded. */
function sleb(value: bigint): number[] {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = Number(v & 0x7fn);
    v >>= 7n;
    const done = (v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const i32Const = (v: number): number[] => [0x41, ...sleb(BigInt(v | 0))];
const i64Const = (v: number): number[] => [0x42, ...sleb(BigInt(v))];
const I32_ADD = 0x6a;
const I32_SUB = 0x6b;
const I32_XOR = 0x73;
const I32_LT_U = 0x49;
const I64_MUL = 0x7e;
const I64_SHR_U = 0x88;
const I64_EXTEND_I32_U = 0xad;
const I32_WRAP_I64 = 0xa7;
const LOOP = [0x03, 0x40];
const END = 0x0b;
const BR_IF_0 = [0x0d, 0x00];
const i32Store = (offset: number): number[] => [0x36, 0x02, offset];

// params: 0 offset, 1 k0, 2 k1, 3 n; i32 locals: 4 i, 5 c0, 6 c1, 7 c2, 8 c3, 9 key0, 10 key1, 11 rounds left,
// 12 write address; i64 locals: 13 c0 * M0, 14 c2 * M1
const [OFFSET, K0, K1, N, I, C0, C1, C2, C3, KEY0, KEY1, LEFT, PTR, P, Q] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

// prettier-ignore
const body = [
  0x02, 0x09, 0x7f, 0x02, 0x7e,                                     // 9 i32 locals, 2 i64 locals
  ...LOOP,                                                          // loop (per element i; n >= 1)
  ...get(OFFSET), ...set(C0), ...i32Const(0), ...set(C1),           //   c = [offset, 0, i, 0]
  ...get(I), ...set(C2), ...i32Const(0), ...set(C3),
  ...get(K0), ...set(KEY0), ...get(K1), ...set(KEY1),               //   key = [k0, k1]
  ...i32Const(10), ...set(LEFT),
  ...LOOP,                                                          //   loop (10 rounds)
  ...get(C0), I64_EXTEND_I32_U, ...i64Const(M0), I64_MUL, ...set(P), //     p = u64(c0) * M0
  ...get(C2), I64_EXTEND_I32_U, ...i64Const(M1), I64_MUL, ...set(Q), //     q = u64(c2) * M1
  ...get(Q), ...i64Const(32), I64_SHR_U, I32_WRAP_I64,              //     c0 = hi(q) ^ c1 ^ key0
  ...get(C1), I32_XOR, ...get(KEY0), I32_XOR, ...set(C0),
  ...get(P), ...i64Const(32), I64_SHR_U, I32_WRAP_I64,              //     c2 = hi(p) ^ c3 ^ key1
  ...get(C3), I32_XOR, ...get(KEY1), I32_XOR, ...set(C2),
  ...get(Q), I32_WRAP_I64, ...set(C1),                              //     c1 = lo(q)
  ...get(P), I32_WRAP_I64, ...set(C3),                              //     c3 = lo(p)
  ...get(KEY0), ...i32Const(W0), I32_ADD, ...set(KEY0),             //     key0 += W0
  ...get(KEY1), ...i32Const(W1), I32_ADD, ...set(KEY1),             //     key1 += W1
  ...get(LEFT), ...i32Const(1), I32_SUB, ...tee(LEFT), ...BR_IF_0,  //     br_if (--left != 0)
  END,                                                              //   end
  ...get(PTR), ...get(C0), ...i32Store(0),                          //   mem[ptr] = c0
  ...get(PTR), ...get(C1), ...i32Store(4),                          //   mem[ptr + 4] = c1
  ...get(PTR), ...i32Const(8), I32_ADD, ...set(PTR),
  ...get(I), ...i32Const(1), I32_ADD, ...tee(I), ...get(N), I32_LT_U, ...BR_IF_0, // br_if (++i < n)
  END,                                                              // end
  END,
];

// prettier-ignore
const moduleBytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,                   // \0asm, version 1
  ...section(1, [0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00]),  // type: (i32, i32, i32, i32) -> ()
  ...section(3, [0x01, 0x00]),                                      // function 0 has type 0
  ...section(5, [0x01, 0x00, 0x01]),                                // memory: 1 page, growable
  ...section(7, [0x02, ...name('mem'), 0x02, 0x00, ...name('philox'), 0x00, 0x00]),
  ...section(10, [0x01, ...uleb(body.length), ...body]),
]);


interface PhiloxKernel {
  readonly memory: WasmMemory;
  readonly philox: (offset: number, k0: number, k1: number, n: number) => void;
}

let kernel: PhiloxKernel | null | undefined;

function loadKernel(): PhiloxKernel | null {
  if (kernel !== undefined) return kernel;
  kernel = null;
  const exports = instantiateWasm(moduleBytes);
  if (exports) kernel = { memory: exports.mem as WasmMemory, philox: exports.philox as PhiloxKernel['philox'] };
  return kernel;
}

/**
 * The first two Philox4x32-10 output words of counters [offset, 0, i, 0], i < n, under key [k0, k1], interleaved
 * (word 0 of element i at 2i, word 1 at 2i + 1). The view is into the kernel's memory and is only valid until the
 * next call. Undefined when WebAssembly is unavailable.
 */
export function philoxWords(offset: number, k0: number, k1: number, n: number): Uint32Array | undefined {
  const k = loadKernel();
  if (!k) return undefined;
  const bytes = n * 8;
  const have = k.memory.buffer.byteLength;
  if (bytes > have) k.memory.grow(Math.ceil((bytes - have) / 65536));
  if (n > 0) k.philox(offset | 0, k0 | 0, k1 | 0, n);
  return new Uint32Array(k.memory.buffer, 0, 2 * n);
}
