/**
 * The memory estimate (packages/core/src/pipeline/memory-estimate.ts) against the measured peak RSS of the built-in
 * model (`--model builtin`, what admission estimates a job naming no checkpoint as) or the random-weight tiny model
 * the estimate was first calibrated on (`--model tiny`). Each case renders in a child process of its own, with a fresh graph cache (a worker meeting a size for
 * the first time compiles it), two iterations of a few steps so every session reaches its steady arena. The
 * child reports its peak RSS (VmHWM) and its RSS before the engine started; the estimate is given that baseline
 * as its runtime, so both sides count the same process.
 *
 *   npx tsx bench/memory-estimate.ts [--steps 3] [--cases 128,256,384,512,256b2,384b2,512x256,256hr1.5,256hr2,256i2i]
 *                                    [--attention plain|auto|split|subquad|fused] [--memory-mode normal|medvram|lowvram]
 *                                    [--model builtin|tiny]
 *
 * Keep within the host's free memory: 512x512 on the demo model peaks near 1 GiB, plain attention grows with
 * the fourth power of the side.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_MODEL_CONFIG, DEMO_MODEL_CONFIG } from '../packages/core/src/model-files/reference-configs.js';
import type { ModelConfig } from '../packages/core/src/model-files/config.js';
import { ensureDemoModel } from '../packages/core/src/pipeline/demo-model.js';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import { parseAttentionMode } from '../packages/core/src/planning/attention.js';
import { parseMemoryMode, type MemoryMode } from '../packages/core/src/models/memory-mode.js';
import { attentionMemory, estimateJobMemory, type AttentionMemory } from '../packages/core/src/pipeline/memory-estimate.js';
import { hiresSize } from '../packages/core/src/pipeline/hires-size.js';
import { listArg, numberArg, stringArg } from './support/args.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';

const MiB = 1024 ** 2;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Case {
  readonly name: string;
  readonly width: number;
  readonly height: number;
  readonly batch: number;
  readonly hrScale: number;
  readonly img2img: boolean;
}

/** `256`, `512x256`, `256b2` (batch 2), `256hr1.5` (hires, latent upscale), `256i2i` (img2img). */
function parseCase(name: string): Case {
  const m = /^(\d+)(?:x(\d+))?(?:b(\d+))?(?:hr([\d.]+))?(i2i)?$/.exec(name);
  if (!m) throw new Error(`bad case "${name}"`);
  const width = Number(m[1]);
  return { name, width, height: m[2] ? Number(m[2]) : width, batch: m[3] ? Number(m[3]) : 1, hrScale: m[4] ? Number(m[4]) : 1, img2img: m[5] !== undefined };
}

function statusMiB(field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
}

type ModelChoice = 'builtin' | 'tiny';
const MODEL_CONFIGS: Record<ModelChoice, ModelConfig> = { builtin: BUILTIN_MODEL_CONFIG, tiny: DEMO_MODEL_CONFIG };

function parseModel(name: string): ModelChoice {
  if (name !== 'builtin' && name !== 'tiny') throw new Error(`--model must be builtin or tiny, got "${name}"`);
  return name;
}

async function child(c: Case, steps: number, cacheDir: string, attention: string, memoryMode: MemoryMode, model: ModelChoice): Promise<void> {
  const checkpoint = model === 'tiny' ? (await ensureDemoModel(ROOT)).checkpoint : undefined;
  const baseline = statusMiB('VmRSS');
  const engine = new Engine({ root: ROOT, cacheDir, attention, memoryMode, ...(checkpoint ? { checkpoint } : {}) });
  const common = { prompt: 'a lighthouse at dusk', steps, width: c.width, height: c.height, batch_size: c.batch, n_iter: 2, seed: 7 };
  if (c.img2img) {
    const grey = { width: c.width, height: c.height, channels: 3 as const, data: new Uint8Array(c.width * c.height * 3).fill(128) };
    await engine.img2img({ ...common, init_images: [grey], denoising_strength: 0.5 });
  } else {
    await engine.txt2img({
      ...common, enable_hr: c.hrScale > 1, hr_scale: c.hrScale, hr_upscaler: 'Latent', hr_second_pass_steps: steps, denoising_strength: 0.5,
    });
  }
  await engine.close();
  console.log(JSON.stringify({ baseline, peak: statusMiB('VmHWM') }));
}

/** How the engine's attention mode holds scores, as the workers advertise it (see workerAttentionMemory). */
function estimateMiB(c: Case, baselineMiB: number, attention: AttentionMemory, memoryMode: MemoryMode, config: ModelConfig): number {
  const hires = c.hrScale > 1
    ? { ...hiresSize({ width: c.width, height: c.height, hr_scale: c.hrScale, hr_resize_x: 0, hr_resize_y: 0 }), latentUpscale: true }
    : undefined;
  return estimateJobMemory({
    config, width: c.width, height: c.height, batchSize: c.batch, encodesInput: c.img2img,
    ...(hires ? { hires } : {}), attention, runtimeBytes: baselineMiB * MiB, oneSessionResident: memoryMode !== 'normal',
  }).bytes / MiB;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const steps = numberArg(argv, 'steps', 3);
  const attention = stringArg(argv, 'attention', 'plain');
  const memoryMode = parseMemoryMode(stringArg(argv, 'memory-mode', 'normal'));
  const model = parseModel(stringArg(argv, 'model', 'builtin'));
  if (argv[0] === '--child') {
    await child(parseCase(argv[1]!), steps, argv[2]!, attention, memoryMode, model);
    return;
  }
  const memory = attentionMemory(parseAttentionMode(attention), 'cpu');
  const cases = listArg(argv, 'cases', ['128', '256', '384', '512', '256b2', '384b2', '512x256', '256hr1.5', '256hr2', '256i2i']).map(parseCase);
  const rows: Row[] = [];
  for (const c of cases) {
    const cacheDir = mkdtempSync(join(tmpdir(), 'darkroom-memory-'));
    try {
      const run = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', c.name, cacheDir, '--steps', String(steps), '--attention', attention, '--memory-mode', memoryMode, '--model', model], {
        cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
      });
      const line = run.stdout.trim().split('\n').at(-1) ?? '';
      if (run.status !== 0 || !line.startsWith('{')) throw new Error(`case ${c.name} failed (status ${run.status}): ${run.stdout}`);
      const { baseline, peak } = JSON.parse(line) as { baseline: number; peak: number };
      const estimate = estimateMiB(c, baseline, memory, memoryMode, MODEL_CONFIGS[model]);
      rows.push({
        case: c.name, baseline_mib: baseline, peak_mib: peak, above_mib: peak - baseline,
        estimate_above_mib: estimate - baseline, error_pct: (100 * (estimate - peak)) / (peak - baseline),
      });
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  }
  const columns = [
    { key: 'case', label: 'case' }, { key: 'baseline_mib', label: 'baseline MiB' }, { key: 'peak_mib', label: 'peak RSS MiB' },
    { key: 'above_mib', label: 'measured above baseline' }, { key: 'estimate_above_mib', label: 'estimated above baseline' },
    { key: 'error_pct', label: 'estimate error %' },
  ];
  printTable(`memory estimate vs peak RSS, ${model === 'builtin' ? 'built-in' : 'random-weight tiny'} model, ${attention} attention, ${memoryMode}, ${steps} steps x 2 iterations`, columns, rows);
  writeResult({
    bench: `memory-estimate${memoryMode === 'normal' ? '' : `-${memoryMode}`}${model === 'builtin' ? '' : '-tiny'}`, date: new Date().toISOString(), machine: machineInfo('cpu'),
    parameters: { steps, attention, memoryMode, model, cases: cases.map((c) => c.name) }, rows,
  });
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
