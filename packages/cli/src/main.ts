/**
 * `darkroom` command line: txt2img, img2img and png-info on the same engine the farm's workers run.
 * Exit status: 0 done, 1 the job failed (the error's code is printed), 2 bad usage.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { pngInfo } from '@darkroom/core/pipeline/engine.js';
import type { GenerationResult } from '@darkroom/core/pipeline/job.js';
import { parseCli, USAGE, UsageError, type CliRequest } from './args.js';
import { darkroomHome, jobOptions, openEngine } from './engine-setup.js';
import { progressBar } from './progress.js';
import { SCRIPT_COMMANDS, type ScriptCommand } from './script-flags.js';
import { runScriptCommand } from './script-run.js';
import { train } from './train.js';
import { parseTrainArgs, TRAIN_USAGE } from './train-args.js';

/** out.png for one image; out-0.png, out-1.png, ... for several. */
export function outputPaths(output: string | undefined, seeds: readonly number[]): string[] {
  const base = output ?? `darkroom-${seeds[0]}.png`;
  if (seeds.length === 1) return [base];
  const ext = extname(base) || '.png';
  const stem = ext && base.endsWith(ext) ? base.slice(0, -ext.length) : base;
  return seeds.map((_, i) => `${stem}-${i}${ext}`);
}

async function generate(req: CliRequest): Promise<number> {
  const engine = openEngine(req);
  const bar = req.quiet ? undefined : progressBar();
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  try {
    const job = jobOptions(req, controller.signal, bar);
    let result: GenerationResult;
    if (req.command === 'txt2img') {
      result = await engine.txt2img(req.txt2img!, job);
    } else {
      const init = new Uint8Array(await readFile(req.initImage!));
      const mask = req.mask === undefined ? undefined : new Uint8Array(await readFile(req.mask));
      result = await engine.img2img({ ...req.img2img!, init_images: [init], ...(mask ? { mask } : {}) }, job);
    }
    bar?.done();
    const files = outputPaths(req.output, result.seeds);
    for (let i = 0; i < result.images.length; i++) await writeFile(files[i]!, result.images[i]!);
    if (req.json) {
      process.stdout.write(`${JSON.stringify({ files, seeds: result.seeds, subseeds: result.subseeds, infotexts: result.infotexts }, null, 2)}\n`);
    } else {
      for (let i = 0; i < files.length; i++) process.stdout.write(`${files[i]}\n${result.infotexts[i]}\n\n`);
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    await engine.close();
  }
}

async function showPngInfo(req: CliRequest): Promise<number> {
  const info = pngInfo(new Uint8Array(await readFile(req.file!)));
  if (req.json) process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  else if (info.info) process.stdout.write(`${info.info}\n`);
  else process.stdout.write(`(no parameters in ${req.file})\n`);
  return 0;
}

async function runTrain(argv: readonly string[]): Promise<number> {
  try {
    const req = parseTrainArgs(argv);
    if (req.help) {
      process.stdout.write(TRAIN_USAGE);
      return 0;
    }
    return await train(req, darkroomHome());
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`darkroom train: ${e.message}\n\n${TRAIN_USAGE}`);
      return 2;
    }
    if (isDarkroomError(e)) {
      const field = typeof e.details.field === 'string' ? ` (${e.details.field})` : '';
      process.stderr.write(`\ndarkroom train: error [${e.code}]${field}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === 'train') return runTrain(argv.slice(1));
  if (argv[0] !== undefined && argv[0] in SCRIPT_COMMANDS) return runScriptCommand(argv[0] as ScriptCommand, argv.slice(1));
  let req: CliRequest;
  try {
    req = parseCli(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`darkroom: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
  try {
    if (req.command === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (req.command === 'png-info') return await showPngInfo(req);
    return await generate(req);
  } catch (e) {
    if (isDarkroomError(e)) {
      process.stderr.write(`\ndarkroom: error [${e.code}]: ${e.message}\n`);
      return 1;
    }
    if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('E')) {
      process.stderr.write(`\ndarkroom: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}


