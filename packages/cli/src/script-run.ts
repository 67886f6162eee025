/**
 * `darkroom xyz` / `darkroom seed-travel`: core plans the script over the flags' request, the local engine renders
 * every cell one after another, and the grids (X/Y/Z plot) or frames and animations (seed travel) are written to
 * the output folder, whose paths are printed. The same plan the farm fans out over its workers.
 */
import { randomInt } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { decodePng, encodePng, type RasterImage } from '@darkroom/core/formats/png.js';
import type { GenerationResult } from '@darkroom/core/pipeline/job.js';
import type { Img2ImgParams, Txt2ImgParams } from '@darkroom/core/pipeline/params.js';
import { composeScriptGrids, planScript, scriptArgsFromA1111, scriptGridInfotexts, type GenerationParams, type ScriptPlan } from '@darkroom/core/scripts/index.js';
import { encodeAnimation, type AnimationFormat, type RgbFrame } from '@darkroom/farm/animation.js';
import { UsageError } from './args.js';
import { jobOptions, openEngine } from './engine-setup.js';
import { progressBar } from './progress.js';
import { parseScriptCli, SCRIPT_USAGE, type ScriptCliRequest, type ScriptCommand } from './script-flags.js';

export interface ScriptFiles {
  grids: string[];
  /** Each cell's images (X/Y/Z plot) or each frame in frame order (seed travel). */
  images: string[];
  animations: string[];
}

/** The request's base for the plan: the txt2img flags, or the img2img flags with the init image read in. */
async function baseParams(req: ScriptCliRequest): Promise<GenerationParams> {
  const g = req.generation;
  if (g.command === 'txt2img') return g.txt2img!;
  const init = new Uint8Array(await readFile(g.initImage!));
  const mask = g.mask === undefined ? undefined : new Uint8Array(await readFile(g.mask));
  return { ...g.img2img!, init_images: [init], ...(mask ? { mask } : {}) } as Img2ImgParams;
}

/** Core's plan; a script argument it refuses is reported by the flag that set it. */
function plan(req: ScriptCliRequest, base: GenerationParams): ScriptPlan {
  try {
    const options = scriptArgsFromA1111(req.script, req.scriptArgs, { mode: req.generation.command === 'img2img' ? 'img2img' : 'txt2img' });
    // Neither script is staged, so its plan is a ScriptPlan.
    return planScript(req.script, options, base, { randomSeed: () => randomInt(0, 4294967294) }) as ScriptPlan;
  } catch (e) {
    if (!isDarkroomError(e) || typeof e.details.field !== 'string') throw e;
    const m = /^script_args\[(\d+)\]$/.exec(e.details.field);
    const flag = m ? req.argFlags.get(Number(m[1])) : undefined;
    if (flag) throw new UsageError(`${flag}: ${e.message.replace(/^script_args\[\d+\]: /, '')}`);
    throw e;
  }
}

function rgbFrame(img: RasterImage): RgbFrame {
  if (img.channels !== 3) throw new UsageError(`a frame has ${img.channels} channels; renders are RGB`);
  return { width: img.width, height: img.height, channels: 3, data: img.data };
}

/** Renders every cell in the plan's order, with a progress bar per cell (its own elapsed time and ETA). */
async function renderCells(req: ScriptCliRequest, cells: ScriptPlan['cells'], signal: AbortSignal): Promise<GenerationResult[]> {
  const engine = openEngine(req.generation);
  const results: GenerationResult[] = [];
  try {
    for (const [i, cell] of cells.entries()) {
      const bar = req.generation.quiet ? undefined : progressBar();
      const job = jobOptions(req.generation, signal, bar, `cell ${i + 1}/${cells.length}`);
      results.push(req.generation.command === 'img2img'
        ? await engine.img2img(cell.params as Img2ImgParams, job)
        : await engine.txt2img(cell.params as Txt2ImgParams, job));
      bar?.done();
    }
    return results;
  } finally {
    await engine.close();
  }
}

/** The folder's files: grids, then images, then animations, as the farm lists a flow's outputs. */
async function writeOutputs(req: ScriptCliRequest, p: ScriptPlan, results: readonly GenerationResult[], dir: string): Promise<ScriptFiles> {
  await mkdir(dir, { recursive: true });
  const files: ScriptFiles = { grids: [], images: [], animations: [] };
  const firsts = results.map((r) => (r.images[0] ? decodePng(r.images[0]) : null));
  const { grids } = composeScriptGrids(p, firsts);
  const texts = scriptGridInfotexts(p, results.map((r) => r.infotexts[0] ?? ''));
  // The grids A1111 returns (X/Y/Z plot's sub-grids only with --include-sub-grids), in its order.
  for (const o of p.outputs) {
    if (o.kind !== 'grid') continue;
    const file = join(dir, `grid-${o.grid}.png`);
    const text = texts[o.grid];
    await writeFile(file, encodePng(grids[o.grid]!, text ? [['parameters', text]] : []));
    files.grids.push(file);
  }
  if (req.command === 'seed-travel') {
    // Every frame in frame order (a cell reused by the cache is written again under its frame's number).
    const frames = p.outputs.flatMap((o) => (o.kind === 'grid' ? [] : [o.cell]));
    for (const [f, cell] of frames.entries()) {
      const file = join(dir, `frame-${String(f).padStart(5, '0')}.png`);
      await writeFile(file, results[cell]!.images[0]!);
      files.images.push(file);
    }
  } else {
    for (const [c, r] of results.entries()) {
      for (const [k, png] of r.images.entries()) {
        const file = join(dir, r.images.length === 1 ? `cell-${String(c).padStart(4, '0')}.png` : `cell-${String(c).padStart(4, '0')}-${k}.png`);
        await writeFile(file, png);
        files.images.push(file);
      }
    }
  }
  const formats: AnimationFormat[] = req.gif ? ['webp', 'gif'] : ['webp'];
  for (const [n, a] of (p.animations ?? []).entries()) {
    const frames = a.frames.map((c) => rgbFrame(firsts[c]!));
    for (const format of formats) {
      const file = join(dir, `travel-${n}.${format}`);
      await writeFile(file, await encodeAnimation(frames, { format, fps: a.fps }));
      files.animations.push(file);
    }
  }
  return files;
}

async function run(req: ScriptCliRequest): Promise<number> {
  const base = await baseParams(req);
  const p = plan(req, base);
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  let results: GenerationResult[];
  try {
    results = await renderCells(req, p.cells, controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
  }
  const dir = req.generation.output ?? `darkroom-${req.command}-${results[0]?.seeds[0] ?? 'out'}`;
  const files = await writeOutputs(req, p, results, dir);
  if (req.generation.json) {
    const cells = p.cells.map((c, i) => ({ label: c.label, seeds: results[i]!.seeds, subseeds: results[i]!.subseeds, infotexts: results[i]!.infotexts }));
    process.stdout.write(`${JSON.stringify({ script: req.script, ...files, cells, warnings: p.warnings }, null, 2)}\n`);
  } else {
    for (const w of p.warnings) process.stderr.write(`warning: ${w}\n`);
    for (const f of [...files.grids, ...files.images, ...files.animations]) process.stdout.write(`${f}\n`);
  }
  return 0;
}

/** Exit status as the other commands: 0 done, 1 the job failed (its code printed), 2 bad usage. */
export async function runScriptCommand(command: ScriptCommand, argv: readonly string[]): Promise<number> {
  try {
    const req = parseScriptCli(command, argv);
    if (req.help) {
      process.stdout.write(SCRIPT_USAGE);
      return 0;
    }
    return await run(req);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`darkroom ${command}: ${e.message}\n\n${SCRIPT_USAGE}`);
      return 2;
    }
    if (isDarkroomError(e) || (e instanceof Error && e.name === 'FarmError')) {
      const err = e as Error & { code: string };
      process.stderr.write(`\ndarkroom ${command}: error [${err.code}]: ${err.message}\n`);
      return 1;
    }
    if (e instanceof Error && 'code' in e && typeof e.code === 'string' && e.code.startsWith('E')) {
      process.stderr.write(`\ndarkroom ${command}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
