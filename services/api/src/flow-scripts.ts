import { randomInt } from 'node:crypto';
import { isDarkroomError } from '@darkroom/core/errors.js';
import {
  planScript, scriptArgsFromA1111, scriptByName, scriptInfos, scriptNamesFor, type FlowScriptName, type GenerationParams, type ScriptInfo, type ScriptName, type ScriptPlan,
  type StagedScriptPlan,
} from '@darkroom/core/scripts/index.js';
import type { AffineMove } from '@darkroom/core/pipeline/affine-transform.js';
import { FarmError, SdapiImg2ImgRequest, type GenerateKind, type GenerateRequest } from '@darkroom/farm';
import { MAX_FLOW_CHILDREN, type FlowAnimation, type FlowAnimationSettings, type FlowScriptPlan } from '@darkroom/farm/flows.js';
import type { ApiContext } from './context.js';
import { listModels } from './models.js';

export interface PlannedChild {
  kind: GenerateKind;
  request: GenerateRequest;
  /**
   * A dependent stage: an img2img of image `image` of child `child`, run once that child completed, that image
   * first moved by `transform` when there is one (an animator frame).
   */
  from?: { child: number; image: number; transform?: AffineMove };
}

/** Scripts core plans that flows cannot run yet, refused by name rather than half run (none at present). */
const NOT_AS_FLOWS: ReadonlySet<ScriptName> = new Set<ScriptName>();

/** The scripts a tab runs as flows, in A1111's listing order (`/sdapi/v1/scripts`). */
export function flowScriptNames(mode: GenerateKind): ScriptName[] {
  return scriptNamesFor(mode).filter((n) => !NOT_AS_FLOWS.has(n));
}

/** A1111's ScriptInfo of the scripts flows run (`/sdapi/v1/script-info`). */
export function flowScriptInfos(): ScriptInfo[] {
  return scriptInfos().filter((i) => !NOT_AS_FLOWS.has(i.name as ScriptName));
}

/** The script `script_name` selects on that tab, if flows run it. */
export function flowScriptByName(name: string, mode: GenerateKind): ScriptName | undefined {
  const script = scriptByName(name, mode);
  return script && !NOT_AS_FLOWS.has(script) ? script : undefined;
}

/**
 * An img2img stage's request: the plan's params with A1111's img2img defaults for what a txt2img base lacks. The
 * init image is no upload but the earlier stage's output, which the job's input keys name (flow-submit.ts).
 */
function stageRequest(params: Record<string, unknown>, base: GenerateRequest): GenerateRequest {
  const parsed = SdapiImg2ImgRequest.safeParse({ ...params, init_images: ['AA=='], mask: null });
  if (!parsed.success) throw new FarmError('SCRIPT_ARGS_INVALID', 400, `the img2img stage's request is not valid: ${parsed.error.issues[0]?.message ?? ''}`, 'script_args');
  return { ...parsed.data, init_images: [], webhook: null, model: base.model, embeddings: base.embeddings, hypernetworks: base.hypernetworks, clip_skip: base.clip_skip };
}

/** `script_name` that names no script this farm runs: A1111's own words, 422 on /sdapi, 400 on /v1. */
export function unknownScript(name: string, field: string, status: number): FarmError {
  return new FarmError('UNKNOWN_SCRIPT', status, `Script '${name}' not found (GET /sdapi/v1/scripts lists the scripts this farm runs)`, field);
}

/**
 * An A1111 script over `base` as a flow: the script's cells (core/scripts' plan, in A1111's run order) become the
 * children and the plan's layout and output order go to the parent, which composes the grids. A -1 seed is fixed
 * here as A1111's script fixes it; a checkpoint an X/Y/Z axis or a prompt line names becomes the child's `model`.
 * Script argument errors keep core's field (`script_args[3]`), renamed by `argsField` for /v1 (`script.args[3]`).
 */
export async function planFlowScript(
  ctx: ApiContext, tenant: string, name: string, args: readonly unknown[], kind: GenerateKind, base: GenerateRequest,
  opts: { status: number; nameField: string; argsField: string; animation?: FlowAnimationSettings | null },
): Promise<{ children: PlannedChild[]; script: FlowScriptPlan }> {
  const script = flowScriptByName(name, kind);
  if (!script) throw unknownScript(name, opts.nameField, opts.status);
  const checkpoints = (await listModels(ctx.registry, ctx.cfg.modelsDir, tenant)).map((m) => m.title);
  // The cells are copies of the base: they must not ask for the script again.
  const source = { ...base, script_name: null, script_args: [] } as unknown as GenerationParams;
  let plan;
  try {
    const options = scriptArgsFromA1111(script, args, { mode: kind });
    plan = planScript(script, options, source, { randomSeed: () => randomInt(0, 4294967294), maxCells: MAX_FLOW_CHILDREN, checkpoints });
  } catch (e) {
    if (!isDarkroomError(e)) throw e;
    const raw = typeof e.details.field === 'string' ? e.details.field : 'script_args';
    const field = raw.replace(/^script_args/, opts.argsField);
    throw new FarmError(e.code, opts.status, e.message.replace(/^script_args/, opts.argsField), field);
  }
  return childrenOfPlan(script, plan, kind, base, opts);
}

/**
 * A plan's cells and stages as the flow's children, and what the parent keeps to compose: the cells first (a
 * checkpoint named in their settings becomes the child's `model`), then each later stage as an img2img child of the
 * image it starts from (with the stage's move, if any, for the worker to apply to that image first). A staged
 * plan's images are those of its image stages (by default the last), and its animations' frames, stage indices in
 * the plan, become child indices.
 */
export function childrenOfPlan(
  script: ScriptName | FlowScriptName, plan: ScriptPlan | StagedScriptPlan, kind: GenerateKind, base: GenerateRequest,
  opts: { status: number; nameField: string; animation?: FlowAnimationSettings | null },
): { children: PlannedChild[]; script: FlowScriptPlan } {
  const children = plan.cells.map((cell): PlannedChild => {
    const request = { ...(cell.params as unknown as GenerateRequest) };
    const settings = { ...(request.override_settings ?? {}) };
    if (typeof settings.sd_model_checkpoint === 'string') {
      request.model = settings.sd_model_checkpoint;
      delete settings.sd_model_checkpoint;
    }
    request.override_settings = Object.keys(settings).length > 0 ? settings : null;
    return { kind, request };
  });
  let imagesFrom: number[] | undefined;
  let stageChild: ((stage: number) => number) | undefined;
  if ('stages' in plan && plan.stages.length > 1) {
    const childOf = new Map<string, number>();
    for (const [si, stage] of plan.stages.entries()) {
      if (stage.kind === 'cells') {
        for (const c of stage.cells) childOf.set(`${si}:${c}`, c);
        continue;
      }
      const from = childOf.get(`${stage.from.stage}:${stage.from.cell}`);
      if (from === undefined) throw new FarmError('SCRIPT_ARGS_INVALID', opts.status, `stage ${si} starts from a stage the flow has not planned`, opts.nameField);
      const request = stageRequest(stage.params as unknown as Record<string, unknown>, base);
      childOf.set(`${si}:0`, children.length);
      children.push({ kind: 'img2img', request, from: { child: from, image: stage.from.image, ...(stage.transform ? { transform: stage.transform } : {}) } });
    }
    // Each stage's first child: an img2img stage's only one, a cells stage's first cell.
    stageChild = (si: number) => {
      const stage = plan.stages[si];
      const child = stage === undefined ? undefined : childOf.get(`${si}:${stage.kind === 'cells' ? stage.cells[0] : 0}`);
      if (child === undefined) throw new FarmError('SCRIPT_ARGS_INVALID', opts.status, `the plan names stage ${si}, which it does not have`, opts.nameField);
      return child;
    };
    const stagesOfImages = plan.imageStages ?? [plan.stages.length - 1];
    imagesFrom = stagesOfImages.flatMap((si) => [...childOf.entries()].filter(([k]) => k.startsWith(`${si}:`)).map(([, v]) => v));
  }
  // Each animation of the plan (seed travel's video) in every format asked for, in that order.
  const settings = opts.animation ?? { formats: ['webp' as const], lossless: true };
  const animations: FlowAnimation[] = (plan.animations ?? []).flatMap((a) => settings.formats.map((format) => ({
    frames: stageChild ? a.frames.map(stageChild) : [...a.frames], fps: a.fps, label: a.label, format, lossless: settings.lossless,
    ...(a.delaysMs ? { delays: [...a.delaysMs] } : {}),
  })));
  return {
    children,
    script: {
      ...(imagesFrom ? { imagesFrom } : {}),
      ...(animations.length > 0 ? { animations } : {}),
      name: script, layout: plan.layout as FlowScriptPlan['layout'], outputs: [...plan.outputs],
      cells: plan.cells.map((c) => ({ label: c.label, width: Number(c.params.width ?? base.width), height: Number(c.params.height ?? base.height) })),
      warnings: [...plan.warnings],
    },
  };
}
