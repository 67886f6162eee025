/**
 * Parity of the seeded noise against an rng folder: every tensor key of the three files (CPU AVX2 kernel, CPU
 * portable kernel, NV) rebuilt from its name, and the summaries of rng.json (sha256 = bit-exact). A noise file
 * or summary section the folder lacks is one skipped line.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensorsFile } from '../src/formats/safetensors.js';
import type { Float32Tensor } from '../src/tensor.js';
import { ImageRNG, randn, randnLocal, slerp, type NoiseSource } from '../src/sampling/rng/image-rng.js';
import { elementwiseClose, fmt, type CaseResult } from './report.js';

const FILES: ReadonlyArray<readonly [string, NoiseSource, string]> = [
  ['randn_cpu_avx2.safetensors', 'cpu', 'cpu_avx2'],
  ['randn_cpu_default_kernel.safetensors', 'cpu-portable', 'cpu_default_kernel'],
  ['randn_nv.safetensors', 'nv', 'nv'],
];

/** Keys whose values pass through slerp (float32 norms/acos/sin): compared to this absolute tolerance, not bit for bit. */
const SLERP_ATOL = 2e-6;

const shapeOf = (s: string): [number, number, number] => s.split('x').map(Number) as [number, number, number];

function nth(rng: ImageRNG, draws: number): Float32Tensor {
  let t = rng.next();
  for (let i = 1; i < draws; i++) t = rng.next();
  return t;
}

/** Rebuilds the tensor an rng oracle key names, or undefined for an unknown key. */
export function rebuildRngKey(key: string, source: NoiseSource): { tensor: Float32Tensor; exact: boolean } | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^randn\/seed(\d+)\/([\dx]+)$/.exec(key))) {
    return { tensor: randn(source, Number(m[1]), shapeOf(m[2]!)), exact: true };
  }
  if ((m = /^randn_local\/seed(\d+)\/([\dx]+)$/.exec(key))) {
    return { tensor: randnLocal(source, Number(m[1]), shapeOf(m[2]!)), exact: true };
  }
  if ((m = /^image_rng\/seed(\d+)\/([\dx]+)\/draw(\d+)$/.exec(key))) {
    const rng = new ImageRNG({ shape: shapeOf(m[2]!), seeds: [Number(m[1])], source });
    return { tensor: nth(rng, Number(m[3]) + 1), exact: true };
  }
  if ((m = /^image_rng_batch\/seeds(\d+)_(\d+)\/([\dx]+)\/(first|draw1)$/.exec(key))) {
    const rng = new ImageRNG({ shape: shapeOf(m[3]!), seeds: [Number(m[1]), Number(m[2])], source });
    return { tensor: nth(rng, m[4] === 'first' ? 1 : 2), exact: true };
  }
  if ((m = /^variation\/seed(\d+)\/subseed(\d+)\/strength([\d.]+)\/([\dx]+)\/(first|draw1)$/.exec(key))) {
    const strength = Number(m[3]);
    const rng = new ImageRNG({
      shape: shapeOf(m[4]!),
      seeds: [Number(m[1])],
      subseeds: [Number(m[2])],
      subseedStrength: strength,
      source,
    });
    return { tensor: nth(rng, m[5] === 'first' ? 1 : 2), exact: strength === 0 || m[5] !== 'first' };
  }
  if ((m = /^resize\/seed(\d+)\/subseed(\d+)\/strength([\d.]+)\/from(\d+)x(\d+)\/([\dx]+)\/(first|draw1)$/.exec(key))) {
    const strength = Number(m[3]);
    const rng = new ImageRNG({
      shape: shapeOf(m[6]!),
      seeds: [Number(m[1])],
      subseeds: [Number(m[2])],
      subseedStrength: strength,
      seedResizeFromH: Number(m[4]),
      seedResizeFromW: Number(m[5]),
      source,
    });
    return { tensor: nth(rng, m[7] === 'first' ? 1 : 2), exact: strength === 0 || m[7] !== 'first' };
  }
  if ((m = /^slerp\/low_seed(\d+)\/high_seed(\d+)\/val([\d.]+)\/([\dx]+)$/.exec(key))) {
    const shape = shapeOf(m[4]!);
    const low = randn(source, Number(m[1]), shape);
    const high = randn(source, Number(m[2]), shape);
    return { tensor: slerp(Number(m[3]), low, high), exact: false };
  }
  if ((m = /^ensd(\d+)\/seed(\d+)\/([\dx]+)\/(first|step(\d+))$/.exec(key))) {
    const rng = new ImageRNG({ shape: shapeOf(m[3]!), seeds: [Number(m[2])], source, ensd: Number(m[1]) });
    return { tensor: nth(rng, m[4] === 'first' ? 1 : Number(m[5]) + 2), exact: true };
  }
  return undefined;
}

function countDiffering(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

interface Summary {
  first64: number[];
  last64: number[];
  sum_f64: number;
  sumsq_f64: number;
  sha256_f32le: string;
}

/** Yields one case per tensor key per file, then one per summary. */
export async function* rngCases(folder: string): AsyncGenerator<CaseResult> {
  for (const [file, source, label] of FILES) {
    if (!existsSync(join(folder, file))) {
      yield { name: `rng/${label}`, status: 'skip', detail: `the folder has no ${file}` };
      continue;
    }
    const { tensors } = await readSafetensorsFile(join(folder, file));
    for (const [key, ref] of tensors) {
      const name = `rng/${label}/${key}`;
      const rebuilt = rebuildRngKey(key, source);
      if (!rebuilt) {
        yield { name, status: 'fail', detail: 'unrecognised oracle key' };
        continue;
      }
      const refData = ref.data as Float32Array;
      const got = rebuilt.tensor.data;
      const c = elementwiseClose(got, refData, rebuilt.exact ? 0 : SLERP_ATOL, 0);
      const differing = countDiffering(got, refData);
      yield {
        name,
        status: c.ok ? 'pass' : 'fail',
        maxAbs: c.maxAbs,
        maxRel: c.maxRel,
        detail: rebuilt.exact
          ? differing === 0
            ? 'bit-exact'
            : `${differing} elements differ`
          : `slerp path, atol ${fmt(SLERP_ATOL)}${differing === 0 ? ', bit-exact' : `, ${differing} elements not bit-exact`}`,
      };
    }
  }
  const meta = JSON.parse(await readFile(join(folder, 'rng.json'), 'utf8')) as {
    summaries?: Record<string, Record<string, Summary>>;
  };
  if (!meta.summaries) {
    yield { name: 'rng/summaries', status: 'skip', detail: 'rng.json has no "summaries" section' };
    return;
  }
  for (const [, source, label] of FILES) {
    for (const [key, s] of Object.entries(meta.summaries[label] ?? {})) {
      const m = /^randn\/seed(\d+)\/([\dx]+)$/.exec(key);
      const name = `rng/${label}/summary/${key}`;
      if (!m) {
        yield { name, status: 'fail', detail: 'unrecognised summary key' };
        continue;
      }
      const t = randn(source, Number(m[1]), shapeOf(m[2]!)).data;
      const sha = createHash('sha256').update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength)).digest('hex');
      const first = elementwiseClose(t.subarray(0, 64), s.first64, 0, 0);
      const last = elementwiseClose(t.subarray(t.length - 64), s.last64, 0, 0);
      const ok = sha === s.sha256_f32le && first.ok && last.ok;
      yield {
        name,
        status: ok ? 'pass' : 'fail',
        maxAbs: Math.max(first.maxAbs, last.maxAbs),
        detail: ok ? 'sha256 bit-exact' : `sha256 ${sha === s.sha256_f32le ? 'matches' : 'differs'}`,
      };
    }
  }
}
