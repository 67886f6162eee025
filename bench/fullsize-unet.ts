/**
 * Full-size UNet step time: SD 1.5 (and SD 2.1 with --models sd15,sd21) built by the production graph builder
 * from the real configs with seeded random weights, 512x512 (latent 64x64), cond and uncond in one batch of 2,
 * a 77-token context, float32, on BENCH_PROVIDER (default cpu). Each graph form (plain MatMul/Softmax
 * attention, fused com.microsoft MultiHeadAttention) is built, opened, timed and released before the next, so
 * only one 3.4 GB model lives at a time.
 *
 * A step is one call of the pipeline's CFG denoiser (c_in scaling, sigma -> t, batching cond/uncond, our
 * EngineSession feed/result conversion, the CFG combine); inside it we time onnxruntime's own
 * InferenceSession.run. Their ratio is how much of a step is ours.
 *
 *   npm run bench -- fullsize-unet
 *   npx tsx bench/fullsize-unet.ts [--models sd15,sd21] [--variants plain,fused] [--runs 3] [--warmup 1]
 *                                  [--latent 64] [--dtype float32|float16] [--threads N]
 */
import { benchProvider } from './support/provider.js';
import { listArg, numberArg, stringArg } from './support/args.js';
import { cfgDenoiserFor, fakeConditioning, SessionUNet, unetOnlyModel } from './support/cfg-step.js';
import { buildFullsizeUNet, FULLSIZE_NAMES, fullsizeSpec, type FullsizeName } from './support/fullsize-model.js';
import { machineInfo } from './support/machine.js';
import { ortRunTimer } from './support/ort-run-timer.js';
import { printTable, writeResult, type Column, type Row } from './support/report.js';
import { median, min, nowMs } from './support/stats.js';
import { DarkroomError } from '../packages/core/src/errors.js';
import { createSession } from '../packages/core/src/runtime/session.js';
import { GraphBuilder } from '../packages/core/src/graph/builder.js';
import { float32 } from '../packages/core/src/tensor.js';
import type { ComputeDType } from '../packages/core/src/models/layers.js';

const argv = process.argv.slice(2);
const models = listArg(argv, 'models', ['sd15']) as FullsizeName[];
const variants = listArg(argv, 'variants', ['plain', 'fused']);
const runs = numberArg(argv, 'runs', 3);
const warmup = numberArg(argv, 'warmup', 1);
const latent = numberArg(argv, 'latent', 64);
const threadsArg = stringArg(argv, 'threads', '');
const dtypeArg = stringArg(argv, 'dtype', 'float32');
const provider = benchProvider();

for (const m of models) if (!FULLSIZE_NAMES.includes(m)) throw new DarkroomError('BENCH_UNKNOWN_MODEL', `unknown model ${m}`);
for (const v of variants) if (v !== 'plain' && v !== 'fused') throw new DarkroomError('BENCH_BAD_ARG', `variant must be plain or fused, got ${v}`);
if (dtypeArg !== 'float32' && dtypeArg !== 'float16') throw new DarkroomError('BENCH_BAD_ARG', `dtype must be float32 or float16, got ${dtypeArg}`);
const dtype: ComputeDType = dtypeArg;

const BATCH = 2; // cond + uncond in one UNet call, as A1111's batch_cond_uncond does
const TOKENS = 77;
const SIGMA = 14.614642; // the first step of an SD schedule: t = 999
const gc = (globalThis as { gc?: () => void }).gc;

function rss(): number {
  return Math.round(process.memoryUsage().rss / 2 ** 20);
}

async function benchOne(name: FullsizeName, variant: 'plain' | 'fused', timer: Awaited<ReturnType<typeof ortRunTimer>>): Promise<Row> {
  const spec = fullsizeSpec(name);
  const label = `${name} ${variant}`;
  console.log(`${label}: building ${(spec.parameters / 1e6).toFixed(1)}M-parameter UNet (config checked against ${spec.checkedAgainst})`);
  let built: ReturnType<typeof buildFullsizeUNet> | undefined = buildFullsizeUNet(
    spec,
    { batch: BATCH, height: latent, width: latent, contextLength: TOKENS },
    { fusedAttention: variant === 'fused', dtype },
  );
  const { buildMs, serializeMs, weightBytes } = built;
  console.log(`${label}: built in ${(buildMs / 1000).toFixed(1)} s, serialized in ${(serializeMs / 1000).toFixed(1)} s, rss ${rss()} MiB`);

  const t0 = nowMs();
  const session = await createSession(built.model, { provider, ...(threadsArg ? { threads: Number(threadsArg) } : {}) });
  const sessionMs = nowMs() - t0;
  // onnxruntime holds its own copy now: let ours go before the runs.
  built = undefined;
  gc?.();
  console.log(`${label}: session created in ${(sessionMs / 1000).toFixed(1)} s on ${session.provider}, rss ${rss()} MiB`);

  try {
    const unet = new SessionUNet(session);
    const model = unetOnlyModel(unet, spec.unet.contextDim === 1024 ? 'v' : 'eps');
    const cond = fakeConditioning(TOKENS, spec.unet.contextDim, 1);
    const uncond = fakeConditioning(TOKENS, spec.unet.contextDim, 2);
    const denoiser = cfgDenoiserFor(model, cond, uncond);
    const x = float32([1, 4, latent, latent], Float32Array.from({ length: 4 * latent * latent }, (_, i) => Math.sin(i * 0.37) * SIGMA));
    const sigma = Float32Array.of(SIGMA);

    const step = async () => timer.measure(() => denoiser.denoise(x, sigma));
    const warm: number[] = [];
    for (let i = 0; i < warmup; i++) {
      const r = await step();
      warm.push(r.wallMs);
      console.log(`${label}: warm-up ${i + 1}: ${(r.wallMs / 1000).toFixed(2)} s`);
    }
    const stepMs: number[] = [];
    const ortMs: number[] = [];
    let finite = true;
    unet.runMs.length = 0;
    for (let i = 0; i < runs; i++) {
      const r = await step();
      stepMs.push(r.wallMs);
      ortMs.push(r.ortMs);
      finite &&= r.value.data.every(Number.isFinite);
      console.log(`${label}: step ${i + 1}: ${r.wallMs.toFixed(0)} ms (onnxruntime run ${r.ortMs.toFixed(0)} ms)`);
    }
    const step_ = median(stepMs);
    const ort = median(ortMs);
    const ours = stepMs.map((s, i) => s - ortMs[i]!);
    return {
      model: name,
      variant,
      provider: session.provider,
      dtype,
      latent: `${latent}x${latent}`,
      paramsM: spec.parameters / 1e6,
      weightsGB: weightBytes / 1e9,
      buildS: buildMs / 1000,
      serializeS: serializeMs / 1000,
      sessionS: sessionMs / 1000,
      warmupS: warm.length ? warm[0]! / 1000 : null,
      stepMs: step_,
      stepMinMs: min(stepMs),
      engineRunMs: median(unet.runMs),
      ortRunMs: ort,
      ortShare: ort / step_,
      oursMs: median(ours),
      oursShare: median(ours) / step_,
      outputFinite: finite ? 'yes' : 'NO',
      runs,
    };
  } finally {
    await session.release();
    gc?.();
  }
}

/** Fails in a second, not after a 3.4 GB build, when the provider's libraries do not load. */
async function checkProvider(): Promise<void> {
  const g = new GraphBuilder('provider_check');
  g.output(g.input('x', 'float32', [1]), 'y');
  await (await createSession(g.toModel(), { provider })).release();
}

async function main(): Promise<void> {
  await checkProvider();
  const timer = await ortRunTimer();
  const rows: Row[] = [];
  for (const m of models) for (const v of variants) rows.push(await benchOne(m, v as 'plain' | 'fused', timer));

  const baseline = rows.find((r) => r.variant === 'plain' && r.model === 'sd15');
  const withRatio = rows.map((r) => ({
    ...r,
    vsPlain: baseline && typeof baseline.stepMs === 'number' && typeof r.stepMs === 'number' ? r.stepMs / baseline.stepMs : null,
  }));
  const columns: Column[] = [
    { key: 'model', label: 'model' },
    { key: 'variant', label: 'attention' },
    { key: 'paramsM', label: 'params M' },
    { key: 'buildS', label: 'build s' },
    { key: 'serializeS', label: 'serialize s' },
    { key: 'sessionS', label: 'session s' },
    { key: 'warmupS', label: '1st run s' },
    { key: 'stepMs', label: 'step ms (median)', digits: 0 },
    // On a shared host other work only ever adds time: the fastest run is the least disturbed.
    { key: 'stepMinMs', label: 'step ms (min)', digits: 0 },
    { key: 'ortRunMs', label: 'ORT run() ms', digits: 0 },
    { key: 'ortShare', label: 'ORT share', digits: 4 },
    { key: 'oursMs', label: 'ours ms', digits: 2 },
    { key: 'vsPlain', label: 'vs sd15 plain', digits: 3 },
    { key: 'outputFinite', label: 'finite' },
  ];
  const machine = machineInfo(provider);
  printTable(
    `UNet step, ${provider} provider, latent ${latent}x${latent}, batch ${BATCH} (cond+uncond), ${TOKENS} tokens, ${dtype}, ` +
      `median of ${runs} after ${warmup} warm-up (${machine.cpuModel}, ${machine.cores} cores, load ${machine.loadAverage1m})`,
    columns,
    withRatio,
  );
  const file = writeResult({
    bench: 'fullsize-unet',
    date: new Date().toISOString(),
    machine,
    parameters: { models, variants, runs, warmup, latent, batch: BATCH, tokens: TOKENS, dtype, threads: threadsArg || 'default', sigma: SIGMA },
    rows: withRatio,
    notes: [
      'step = one CFG denoiser call of the txt2img pipeline (c_in, sigma->t, cond/uncond batching, EngineSession feeds/results, CFG combine)',
      'ORT run() = time inside onnxruntime InferenceSession.run (its JS wrapper and the native run); ours = step - ORT run()',
      'weights are seeded random with the real shapes; timing does not depend on their values',
    ],
  });
  console.log(`written ${file}`);
}

await main();
