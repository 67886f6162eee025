import { failedJobError, FarmError, previewKey, readTerminalRecord } from '@darkroom/farm';
import { flowOutputContentType, type FlowJobResult } from '@darkroom/farm/flows.js';
import type { ApiContext } from './context.js';
import { cancelFlow, flowView, loadFlow } from './flow-view.js';

export interface ScriptResult {
  /** base64 PNGs in A1111's order: the grids, then the images the script returns. */
  images: string[];
  /** Seed, subseed and infotext of each of those, for A1111's info JSON. */
  outputs: { seed: number; subseed: number; infotext: string }[];
  /** How many grids lead the images: A1111's index_of_first_image. */
  grids: number;
  /** The script's animations (seed travel's video), which A1111 writes to its outputs folder and returns nowhere. */
  animations: SdapiAnimation[];
  startedAt: string | null;
}

/**
 * An animation in the info JSON: base64 with `send_images` (as the images are), its URL with `save_images` (it is
 * kept only then), its frame count and rate.
 */
export interface SdapiAnimation {
  label: string;
  content_type: string;
  frames: number;
  fps: number;
  data: string | null;
  url: string | null;
}

/**
 * What a synchronous `/sdapi/v1/txt2img` (or img2img) call with `script_name` answers once its flow ended: the
 * grids first, then the images, as A1111's script returns them. A failed flow is refused with the failed child's
 * code, as a failed job is; a cancelled one (an interrupt) answers no images. Unless
 * `save_images`, the farm keeps none of them afterwards, as A1111 writes nothing to its outputs folder.
 */
export async function scriptResult(ctx: ApiContext, tenant: string, flowId: string, sendImages: boolean, saveImages: boolean): Promise<ScriptResult> {
  const view = await flowView(ctx, tenant, flowId);
  if (!view) throw new FarmError('FLOW_NOT_FOUND', 404, `no flow ${flowId}`);
  if (view.state === 'failed') {
    const code = view.error?.code ?? 'RENDER_FAILED';
    throw failedJobError(code, view.error?.message ?? 'render failed');
  }
  const result = (await readTerminalRecord<FlowJobResult>(ctx.redis, ctx.keys, flowId))?.result ?? (await loadFlow(ctx, tenant, flowId))?.returnvalue ?? null;
  // A cancelled flow (an interrupt) has no composed result and answers no images.
  const all = result?.outputs ?? [];
  const records = all.filter((o) => o.kind !== 'animation');
  const images: string[] = [];
  if (sendImages) {
    for (const o of records) {
      const bytes = await ctx.storage.get(o.key);
      if (bytes) images.push(Buffer.from(bytes).toString('base64'));
    }
  }
  const specs = (await loadFlow(ctx, tenant, flowId))?.data.script?.animations ?? [];
  const outputUrls = new Map(view.outputs.map((o) => [o.index, o.url]));
  const animations = await Promise.all(all.filter((o) => o.kind === 'animation').map(async (o, n): Promise<SdapiAnimation> => {
    const bytes = sendImages ? await ctx.storage.get(o.key) : null;
    return {
      label: specs[n]?.label ?? '', content_type: flowOutputContentType(o), frames: specs[n]?.frames.length ?? 0, fps: specs[n]?.fps ?? 0,
      data: bytes ? Buffer.from(bytes).toString('base64') : null, url: saveImages ? outputUrls.get(o.index) ?? null : null,
    };
  }));
  if (!saveImages) for (const o of all) await ctx.storage.delete(o.key);
  const started = view.children.map((c) => c.started_at).filter((s): s is string => s !== null).sort()[0] ?? null;
  return {
    images, outputs: records.map((o) => ({ seed: o.seed, subseed: o.subseed, infotext: o.infotext })), grids: result?.grids ?? 0, animations, startedAt: started,
  };
}

/** `/sdapi/v1/progress` while the tenant's latest call is a script's flow: A1111 counts the script's cells as jobs. */
export async function sdapiFlowProgress(ctx: ApiContext, tenant: string, flowId: string, withImage: boolean): Promise<Record<string, unknown> | null> {
  const view = await flowView(ctx, tenant, flowId);
  if (!view) return null;
  const startedAt = view.children.map((c) => c.started_at).filter((s): s is string => s !== null).sort()[0] ?? null;
  const timestamp = (startedAt ?? view.created_at).replace(/[-:T]/g, '').slice(0, 14);
  const jobCount = view.children.length;
  const jobNo = view.progress.completed;
  const current = view.children.find((c) => c.state === 'running');
  const interrupted = view.state === 'cancelled';
  const state = {
    skipped: false, interrupted, stopping_generation: false, job: '', job_count: 0, job_timestamp: timestamp, job_no: 0, sampling_step: 0, sampling_steps: 0,
  };
  if (view.state !== 'running' && view.state !== 'queued') {
    return { progress: 0, eta_relative: 0, state, current_image: null, textinfo: null, current_task: null };
  }
  const p = current?.progress ?? null;
  const progress = Math.min(1, 0.01 + jobNo / jobCount + (p && p.steps > 0 ? (1 / jobCount) * (p.step / p.steps) : 0));
  const elapsed = startedAt ? (Date.now() - Date.parse(startedAt)) / 1000 : 0;
  let currentImage: string | null = null;
  if (withImage && current && p?.preview) {
    const bytes = await ctx.storage.get(previewKey(tenant, current.id));
    currentImage = bytes ? Buffer.from(bytes).toString('base64') : null;
  }
  return {
    progress, eta_relative: elapsed / progress - elapsed,
    state: { ...state, job: `flow ${flowId}`, job_count: jobCount, job_no: jobNo, sampling_step: p?.step ?? 0, sampling_steps: p?.steps ?? 0 },
    current_image: currentImage, textinfo: null, current_task: flowId,
  };
}

/** `/sdapi/v1/interrupt` during a script: the whole flow is cancelled, as A1111's interrupt ends the script. */
export async function interruptFlow(ctx: ApiContext, tenant: string, flowId: string): Promise<boolean> {
  if (!(await loadFlow(ctx, tenant, flowId))) return false;
  await ctx.redis.set(ctx.keys.sdapiInterrupted(tenant), flowId, 'EX', 86400);
  await cancelFlow(ctx, tenant, flowId);
  return true;
}
