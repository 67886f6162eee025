import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { GraphBuilder } from '../../src/graph/builder.js';
import { CompileCache } from '../../src/models/cache.js';
import type { LoadPhaseTiming } from '../../src/model-files/load-phases.js';
import { loadModel } from '../../src/models/load.js';
import { openCachedGraph, optimizedModelPath } from '../../src/models/optimized-sessions.js';
import { ensureDemoModel } from '../../src/pipeline/demo-model.js';
import { createSession, type EngineSession, type SessionOptions } from '../../src/runtime/session.js';
import { float32, type Float32Tensor } from '../../src/tensor.js';

function seeded(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.2);
}

/**
 * A convolution and a MatMul on constant weights: what onnxruntime re-lays out and prepacks when a session opens
 * (the MatMul's weight past the 1 MiB from which the prepacked form is saved).
 */
async function cachedGraph(dir: string): Promise<string> {
  const g = new GraphBuilder('prepacked');
  const x = g.input('x', 'float32', [1, 8, 16, 16]);
  const conv = g.conv(x, g.weight('conv.weight', float32([320, 8, 3, 3], seeded(320 * 8 * 9, 1))), g.weight('conv.bias', float32([320], seeded(320, 2))), { pads: [1, 1, 1, 1] });
  const tokens = g.transpose(g.reshape(conv, [1, 320, 256]), [0, 2, 1]);
  const y = g.matmul(g.silu(tokens), g.weight('proj.weight', float32([320, 1280], seeded(320 * 1280, 3))));
  g.output(y, 'y');
  const entry = await new CompileCache(dir).getOrBuild({ weights: 'test', component: 'unet', options: {} }, () => g.toModel({ externalDataAboveBytes: 1024 }));
  return entry.path;
}

async function run(path: string, open: (path: string, opts: SessionOptions) => Promise<EngineSession>): Promise<Float32Array> {
  const s = await open(path, { threads: 1 });
  try {
    return ((await s.run({ x: float32([1, 8, 16, 16], seeded(8 * 256, 4)) })).y as Float32Tensor).data;
  } finally {
    await s.release();
  }
}

test('the first session of a cached graph saves onnxruntime\'s optimized form; later ones open it and compute the same bits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'darkroom-optimized-'));
  try {
    const path = await cachedGraph(dir);
    const plain = await run(path, createSession);
    const saved = optimizedModelPath(path, {});
    assert.ok(!existsSync(saved));

    const first = await run(path, openCachedGraph);
    assert.ok(existsSync(join(dirname(saved), 'complete')), 'the optimized form is kept beside the graph');
    assert.ok(statSync(`${saved}.weights`).size >= 320 * 1280 * 4, 'with its large weights outside the protobuf');
    const mtime = statSync(saved).mtimeMs;
    const second = await run(path, openCachedGraph);
    assert.equal(statSync(saved).mtimeMs, mtime, 'opened, not written again');
    assert.deepEqual(first, plain);
    assert.deepEqual(second, plain);
    assert.ok(readdirSync(dirname(path)).every((n) => !n.includes('.tmp-')), 'no temporary folder is left');

    // a damaged saved form is thrown away and made again
    writeFileSync(saved, 'not a model');
    assert.deepEqual(await run(path, openCachedGraph), plain);
    assert.deepEqual(await run(path, openCachedGraph), plain);
    assert.ok(statSync(saved).size > 100);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadModel reports each phase: a first load reads, converts, builds, serializes and writes; a second only opens and runs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'darkroom-phases-'));
  try {
    const demo = await ensureDemoModel(root);
    const cacheDir = join(root, 'cache');
    const load = async (): Promise<LoadPhaseTiming[]> => {
      const phases: LoadPhaseTiming[] = [];
      const sd = await loadModel({ checkpoint: demo.checkpoint, config: demo.config, cacheDir, threads: 1, onPhase: (p) => phases.push(p) });
      const w = sd.textEncoder.width;
      await sd.textEncoder.encode(float32([1, 77, w], new Float32Array(77 * w)), 1);
      await sd.unet.run(float32([2, 4, 8, 8], seeded(512, 5)), Float32Array.of(999, 999), float32([2, 77, w], new Float32Array(2 * 77 * w)));
      await sd.release();
      return phases;
    };
    const seen = (phases: LoadPhaseTiming[]) => new Set(phases.map((p) => `${p.phase}:${p.component}`));
    const first = seen(await load());
    for (const p of ['open:checkpoint', 'hash:checkpoint', 'read:text', 'convert:text', 'build:text', 'serialize:text', 'write:text', 'session:text', 'run:text', 'read:unet', 'build:unet', 'serialize:unet', 'write:unet', 'session:unet', 'run:unet']) {
      assert.ok(first.has(p), `first load reports ${p}`);
    }
    const second = seen(await load());
    assert.ok(second.has('session:unet') && second.has('run:unet') && second.has('hash:checkpoint'));
    assert.ok(![...second].some((p) => /^(build|serialize|write):/.test(p) || p === 'read:unet'), `nothing built: ${[...second].join(', ')}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
