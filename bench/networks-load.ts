/**
 * Per-job load time of networks on a worker: bytes already fetched -> a usable Embedding / Hypernetwork,
 * cold (parse: zip, restricted unpickle, tensor rebuild, PNG decode), cached (sha256 of the bytes + LRU lookup)
 * and cached with the content hash already known (as with content-addressed storage).
 * Inputs: oracle embeddings (.pt, .safetensors, pixel-encoded PNG) and a full-size SD1.5-style hypernetwork
 * (widths 768/320/640/1280, layer structure 1,2,1, about 85 MB) written by our own writer.
 * Prints a table; writes bench/results/networks-load-<time>.json.
 *
 *   npx tsx bench/networks-load.ts [--repeats 5]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { oracleRoot } from '../packages/core/parity/oracle.js';
import { NetworkCache, sha256Hex } from '../packages/core/src/networks/cache.js';
import { loadEmbedding } from '../packages/core/src/networks/embeddings/load.js';
import { loadHypernetwork, moduleLayers, type Hypernetwork, type HypernetworkModule } from '../packages/core/src/networks/hypernetworks/hypernetwork.js';
import { saveHypernetworkPt } from '../packages/core/src/networks/hypernetworks/save.js';
import { float32, type Float32Tensor } from '../packages/core/src/tensor.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const repeats = arg('repeats', 5);

function randomTensor(shape: number[], seed: number): Float32Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 0.02;
  }
  return float32(shape, data);
}

/** An SD1.5-sized hypernetwork as A1111's Train tab creates it (sizes 768, 320, 640, 1280; relu; 1,2,1). */
function fullSizeHypernetwork(): Hypernetwork {
  const arch = { layerStructure: [1, 2, 1], activationFunc: 'relu', addLayerNorm: false, activateOutput: false, dropoutStructure: [0, 0, 0] };
  const layers = new Map<number, readonly [HypernetworkModule, HypernetworkModule]>();
  let seed = 1;
  for (const width of [768, 320, 640, 1280]) {
    const seq = moduleLayers(width, arch);
    const module = (): HypernetworkModule => {
      const params = new Map<number, { weight: Float32Tensor; bias?: Float32Tensor }>();
      for (const l of seq) {
        if (l.kind === 'linear') params.set(l.index, { weight: randomTensor([l.outFeatures, l.inFeatures], seed++), bias: randomTensor([l.outFeatures], seed++) });
      }
      return { layers: seq, params };
    };
    layers.set(width, [module(), module()]);
  }
  return {
    ...arch, sizes: [320, 640, 768, 1280], name: 'bench_full', step: 1000, weightInit: 'Normal', useDropout: false, lastLayerDropout: false,
    optionalInfo: null, sdCheckpoint: null, sdCheckpointName: null, layers, filename: 'bench_full.pt', hash: '', shorthash: '',
  };
}

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn(); // warm-up (JIT)
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < reps; r++) await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6 / reps;
}

interface Row {
  readonly file: string;
  readonly kind: 'embedding' | 'hypernetwork';
  readonly bytes: number;
  readonly coldMs: number;
  readonly cachedMs: number;
  /** Cache hit when the caller passes the content hash it already has (no hashing of the bytes). */
  readonly cachedKnownHashMs: number;
}

async function main(): Promise<void> {
  const ti = join(oracleRoot(), 'text', 'ti');
  const inputs: Array<{ file: string; kind: Row['kind']; bytes: Uint8Array }> = [];
  for (const f of ['pekora.pt', 'bigstyle.safetensors', 'mignon_pixels_only.png', 'pekora_embedding_both.png']) {
    if (existsSync(join(ti, f))) inputs.push({ file: f, kind: 'embedding', bytes: new Uint8Array(readFileSync(join(ti, f))) });
  }
  const small = join(oracleRoot(), 'text', 'hypernetworks', 'hn_relu_768_ln.pt');
  if (existsSync(small)) inputs.push({ file: 'hn_relu_768_ln.pt', kind: 'hypernetwork', bytes: new Uint8Array(readFileSync(small)) });
  inputs.push({ file: 'bench_full.pt (synthetic SD1.5 size)', kind: 'hypernetwork', bytes: saveHypernetworkPt(fullSizeHypernetwork()) });

  const rows: Row[] = [];
  for (const { file, kind, bytes } of inputs) {
    const name = file.split(' ')[0]!;
    const cold = kind === 'embedding' ? () => loadEmbedding(bytes, name) : () => loadHypernetwork(bytes, name);
    const cache = new NetworkCache();
    const cached = kind === 'embedding' ? () => cache.embedding(bytes, name) : () => cache.hypernetwork(bytes, name);
    const hash = sha256Hex(bytes);
    const known = kind === 'embedding' ? () => cache.embedding(bytes, name, hash) : () => cache.hypernetwork(bytes, name, hash);
    const reps = bytes.length > 10_000_000 ? Math.max(1, Math.min(repeats, 3)) : repeats * 10;
    rows.push({
      file,
      kind,
      bytes: bytes.length,
      coldMs: await timeIt(cold, reps),
      cachedMs: await timeIt(cached, reps),
      cachedKnownHashMs: await timeIt(known, reps),
    });
  }

  console.log(`networks-load (node ${process.version}, ${repeats} repeats)`);
  console.log('file'.padEnd(40), 'kind'.padEnd(13), 'bytes'.padStart(11), 'cold ms'.padStart(10), 'cached ms'.padStart(10), 'known-hash'.padStart(11));
  for (const r of rows) {
    console.log(r.file.padEnd(40), r.kind.padEnd(13), String(r.bytes).padStart(11), r.coldMs.toFixed(2).padStart(10), r.cachedMs.toFixed(3).padStart(10), r.cachedKnownHashMs.toFixed(4).padStart(11));
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(out, { recursive: true });
  const path = join(out, `networks-load-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, JSON.stringify({ bench: 'networks-load', node: process.version, repeats, rows }, null, 1) + '\n');
  console.log(`wrote ${path}`);
}

await main();
