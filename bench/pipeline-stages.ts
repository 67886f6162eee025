/**
 * Where the time of one txt2img goes, stage by stage, on the production path (Engine -> txt2img): prompt to
 * conditioning (tokenizer, chunking, text encoder, emphasis), sampling (UNet calls vs everything else: CFG,
 * sampler math, noise), VAE decode, and the rest (8-bit conversion, infotext, PNG). Runs on Darkroom's demo
 * model (always there) and, when the oracle is present, on the oracle's tiny-sd1 with the real CLIP vocabulary.
 * The first run of each configuration compiles graphs and is not timed.
 *
 *   npx tsx bench/pipeline-stages.ts [--runs 5] [--steps 20] [--size 64]
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { oracleRoot, repoRoot } from '../packages/core/parity/oracle.js';
import { Engine } from '../packages/core/src/pipeline/engine.js';
import type { PipelineTrace } from '../packages/core/src/pipeline/trace.js';
import type { Txt2ImgParams } from '../packages/core/src/pipeline/params.js';
import { machineInfo } from './support/machine.js';
import { printTable, writeResult, type Row } from './support/report.js';
import { median, nowMs } from './support/stats.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const runs = arg('runs', 5);
const steps = arg('steps', 20);
const size = arg('size', 64);

interface Stages {
  total: number;
  text: number;
  unet: number;
  sampling: number;
  decode: number;
}

/** Times one request with trace hooks marking the stage boundaries (hooks fire after each piece of work). */
async function timeOnce(engine: Engine, request: Txt2ImgParams, checkpoint: string | undefined): Promise<Stages> {
  const s: Stages = { total: 0, text: 0, unet: 0, sampling: 0, decode: 0 };
  let mark = 0;
  let unetStart = 0;
  let samplingStart = 0;
  const t0 = nowMs();
  mark = t0;
  const trace: PipelineTrace = {
    onTextCall: () => {
      const now = nowMs();
      s.text += now - mark;
      mark = now;
    },
    onInitialNoise: () => {
      samplingStart = nowMs();
      unetStart = samplingStart;
    },
    onRows: () => {
      unetStart = nowMs();
    },
    onUnetCall: () => {
      s.unet += nowMs() - unetStart;
    },
    onLatent: () => {
      const now = nowMs();
      s.sampling += now - samplingStart;
      mark = now;
    },
    onDecoded: () => {
      const now = nowMs();
      s.decode += now - mark;
      mark = now;
    },
  };
  await engine.txt2img(request, { trace, ...(checkpoint ? { checkpoint } : {}) });
  s.total = nowMs() - t0;
  return s;
}

async function main(): Promise<void> {
  const request: Txt2ImgParams = {
    prompt: 'a (castle:1.2) in a forest, [snow:rain:0.5], detailed oil painting',
    negative_prompt: 'grainy, fog',
    steps,
    sampler_name: 'DPM++ 2M',
    scheduler: 'Karras',
    cfg_scale: 7,
    seed: 1,
    width: size,
    height: size,
  };
  const configs: Array<{ name: string; checkpoint?: string; vocabulary?: string }> = [{ name: 'demo (darkroom-tiny-sd1)' }];
  const tiny = join(oracleRoot(), 'model', 'tiny-sd1.safetensors');
  const vocab = join(oracleRoot(), 'text', 'vocab');
  if (existsSync(tiny) && existsSync(vocab)) configs.push({ name: 'oracle tiny-sd1', checkpoint: tiny, vocabulary: vocab });

  const rows: Row[] = [];
  for (const c of configs) {
    const engine = new Engine({ root: repoRoot, threads: 1, ...(c.vocabulary ? { vocabulary: c.vocabulary } : {}) });
    try {
      await timeOnce(engine, request, c.checkpoint); // compiles the graphs of this shape
      const samples: Stages[] = [];
      for (let i = 0; i < runs; i++) samples.push(await timeOnce(engine, request, c.checkpoint));
      const m = (k: keyof Stages) => median(samples.map((x) => x[k]));
      const sampling = m('sampling');
      const unet = m('unet');
      rows.push({
        model: c.name,
        total: m('total'),
        text: m('text'),
        sampling,
        unet,
        outsideUnetPerStep: (sampling - unet) / steps,
        decode: m('decode'),
        rest: m('total') - m('text') - sampling - m('decode'),
      });
    } finally {
      await engine.close();
    }
  }
  const columns = [
    { key: 'model', label: 'model' },
    { key: 'total', label: 'total ms' },
    { key: 'text', label: 'conditioning ms' },
    { key: 'sampling', label: 'sampling ms' },
    { key: 'unet', label: 'UNet ms' },
    { key: 'outsideUnetPerStep', label: 'non-UNet ms/step', digits: 3 },
    { key: 'decode', label: 'VAE decode ms' },
    { key: 'rest', label: 'rest ms' },
  ];
  printTable(`txt2img stages, ${size}x${size}, ${steps} steps DPM++ 2M Karras, CFG (cond+uncond batched), median of ${runs}`, columns, rows);
  const file = writeResult({
    bench: 'pipeline-stages',
    date: new Date().toISOString(),
    machine: machineInfo('cpu'),
    parameters: { runs, steps, size, request },
    rows,
    notes: ['UNet ms includes the CompVis denoiser wrapper around each session run; conditioning covers all text-encoder calls'],
  });
  console.log(`wrote ${file}`);
}

await main();
