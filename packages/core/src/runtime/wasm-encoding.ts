/**
 * The byte encodings a WebAssembly module is assembled from, and its instantiation, for the small modules the
 * engine writes out by instruction (the NV Philox rounds, the fused CFG loop) instead of shipping a binary blob or
 * a build step.
 */

/** An unsigned LEB128 integer: seven bits a byte, low first, the high bit set on all but the last. */
export function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    const byte = v & 0x7f;
    v >>>= 7;
    out.push(v === 0 ? byte : byte | 0x80);
  } while (v !== 0);
  return out;
}

/** A module section: its id, its byte length, its content. */
export const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content];

/** A name (import, export) as its length and its ASCII bytes. */
export const name = (s: string): number[] => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];

/** local.get, local.set and local.tee of local `l`. */
export const get = (l: number): number[] => [0x20, l];
export const set = (l: number): number[] => [0x21, l];
export const tee = (l: number): number[] => [0x22, l];

/** A module's exported memory, as far as the engine's kernels use it. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** The slice of the WebAssembly JS API used to instantiate (the project's TypeScript libs do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: Record<string, unknown> };
}

/**
 * The exports of the module `bytes` encodes, or null where WebAssembly, or a feature the module needs (SIMD), is
 * not available: the callers then take their plain JavaScript path.
 */
export function instantiateWasm(bytes: Uint8Array): Record<string, unknown> | null {
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (!wasm) return null;
  try {
    return new wasm.Instance(new wasm.Module(bytes)).exports;
  } catch {
    return null;
  }
}
