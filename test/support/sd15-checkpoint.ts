/**
 * A random-weight checkpoint with SD 1.5's tensors (names, shapes, order as the oracle's key list gives them),
 * streamed to a .safetensors file so that no more than a few MB are ever held: what the large-file test uploads and
 * what the cold-start bench loads. Values are small uniform noise cycled from one block per dtype; position ids are
 * what they are in a real file. The schedule buffers are left out (the engine computes ldm's when absent).
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot } from '../../packages/core/parity/oracle.js';

/** SD 1.5's key list (names, shapes, stored dtypes), part of the model oracle. */
export const SD15_KEYS_FILE = join(oracleRoot(), 'model', 'sd15-keys.json');

const COMPONENTS = ['model.diffusion_model.', 'first_stage_model.', 'cond_stage_model.'];

export type StoredFloat = 'F16' | 'F32';

interface KeyInfo { shape: number[]; dtype: string }

export function sd15KeysAvailable(): boolean {
  return existsSync(SD15_KEYS_FILE);
}

/**
 * Writes the checkpoint to `path`, each floating tensor in the dtype `floatDtype` picks for its name (default F16,
 * as the 2.1 GB half-precision SD 1.5 files are). Returns the file's size.
 */
export async function writeSd15Checkpoint(path: string, floatDtype: (name: string) => StoredFloat = () => 'F16'): Promise<number> {
  const keys = (JSON.parse(readFileSync(SD15_KEYS_FILE, 'utf8')) as { keys: Record<string, KeyInfo> }).keys;
  const names = Object.keys(keys).filter((k) => COMPONENTS.some((p) => k.startsWith(p))).sort();
  const header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  let offset = 0;
  for (const name of names) {
    const { shape, dtype: stored } = keys[name]!;
    const dtype = stored === 'I64' ? 'I64' : floatDtype(name);
    const bytes = shape.reduce((a, b) => a * b, 1) * (dtype === 'F16' ? 2 : dtype === 'F32' ? 4 : 8);
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  // One block of noise per dtype, written from a moving offset: varied enough, and cheap to make.
  let seed = 0x2545f491;
  const uniform = () => ((seed ^= seed << 13, seed ^= seed >>> 17, seed ^= seed << 5) >>> 0) / 2 ** 32 - 0.5;
  const f32 = Buffer.from(Float32Array.from({ length: 1 << 22 }, () => uniform() * 0.04).buffer);
  // float16 of |x| in [2^-10, 2^-6): exponent 5..8, any mantissa, either sign.
  const f16 = Buffer.from(Uint16Array.from({ length: 1 << 22 }, () => {
    const r = (uniform() + 0.5) * 2 ** 16;
    return ((r & 1) << 15) | ((5 + ((r >>> 1) & 3)) << 10) | ((r >>> 3) & 0x3ff);
  }).buffer);
  const out = createWriteStream(path);
  const write = (b: Buffer) => (out.write(b) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r())));
  await write(len);
  await write(json);
  let turn = 0;
  for (const name of names) {
    const { dtype, shape, data_offsets: [a, b] } = header[name]!;
    if (dtype === 'I64') {
      const ids = new BigInt64Array(shape.reduce((x, y) => x * y, 1));
      for (let i = 0; i < ids.length; i++) ids[i] = BigInt(i % shape.at(-1)!);
      await write(Buffer.from(ids.buffer));
      continue;
    }
    const block = dtype === 'F32' ? f32 : f16;
    for (let left = b - a; left > 0;) {
      const start = (turn = (turn + 4096 * 7) % (block.length / 2)) & ~7;
      const n = Math.min(left, block.length - start);
      await write(block.subarray(start, start + n));
      left -= n;
    }
  }
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  return 8 + json.length + offset;
}
