import { Job } from 'bullmq';
import { FarmError, outputUrl, readTerminalRecord, requestCancel, splitFailedReason, type JobView } from '@darkroom/farm';
import {
  flowOutputContentType, flowOutputFileName, flowState, type FlowJobData, type FlowJobResult, type FlowOutputRecord, type FlowScriptPlan,
  type FlowView,
} from '@darkroom/farm/flows.js';
import type { ApiContext } from './context.js';
import { cancelJob, type CancelOutcome } from './job-actions.js';
import { jobView } from './job-view.js';

export async function loadFlow(ctx: ApiContext, tenant: string, id: string): Promise<Job<FlowJobData, FlowJobResult> | null> {
  const job = await Job.fromId<FlowJobData, FlowJobResult>(ctx.flows.flows, id);
  // Another tenant's flow answers exactly like a missing one.
  return job && job.data.tenant === tenant ? job : null;
}

/** Folder storage hands grids and animations out through the API; S3 presigns them. */
export async function flowOutputUrl(ctx: ApiContext, flowId: string, o: FlowOutputRecord): Promise<string> {
  if (o.kind === 'image' && o.job_id !== null && o.child_index !== null) return outputUrl(ctx.storage, ctx.cfg, o.job_id, o.child_index, o.key);
  return (await ctx.storage.presignedUrl(o.key, ctx.cfg.outputUrlTtlS)) ?? `${ctx.cfg.publicUrl}/v1/flows/${flowId}/outputs/${flowOutputFileName(o)}`;
}

/** A child cancelled before it started is gone from the queue; its tombstone, or nothing, stands for it. */
function missingChild(id: string, kind: JobView['kind'], createdAt: string): JobView {
  return { id, kind, state: 'cancelled', created_at: createdAt, started_at: null, finished_at: null, attempts: 0, progress: null, outputs: [], error: null, webhook: null };
}

/** The plan's grids made of cells (a grid of grids is left out: its parts are listed), each cell by its index. */
function cellGrids(plan: FlowScriptPlan): { cells: number[]; rows: number }[] {
  return plan.layout.grids.flatMap((g) => (g.source.kind === 'cells' ? [{ cells: [...g.source.cells], rows: g.rows }] : []));
}

export async function flowView(ctx: ApiContext, tenant: string, id: string): Promise<FlowView | null> {
  const job = await loadFlow(ctx, tenant, id);
  if (!job) return null;
  const createdAt = new Date(job.timestamp).toISOString();
  const [bullState, terminal] = await Promise.all([job.getState(), readTerminalRecord<FlowJobResult>(ctx.redis, ctx.keys, id)]);
  const children = await Promise.all(job.data.children.map(async (c, index) => ({
    index, ...((await jobView(ctx, tenant, c.id)) ?? missingChild(c.id, c.kind, createdAt)),
  })));
  const state = flowState(bullState, terminal?.type ?? null, children.some((c) => c.state !== 'queued'));
  const completed = children.filter((c) => c.state === 'completed').length;
  const fraction = children.reduce((s, c) => s + (c.state === 'completed' ? 1 : c.progress?.fraction ?? 0), 0) / Math.max(1, children.length);
  const result = terminal?.type === 'completed' ? terminal.result ?? null : state === 'completed' ? job.returnvalue : null;
  let outputs: FlowView['outputs'];
  if (result) {
    outputs = await Promise.all(result.outputs.map(async (o) => ({
      index: o.index, kind: o.kind, content_type: flowOutputContentType(o), child: o.child, job_id: o.job_id, url: await flowOutputUrl(ctx, id, o),
      seed: o.seed, subseed: o.subseed, infotext: o.infotext,
    })));
  } else {
    // Partial results: what the children done so far made, in child order.
    outputs = children.flatMap((c) => c.outputs.map((o) => ({ ...o, kind: 'image' as const, content_type: 'image/png', child: c.index, job_id: c.id })))
      .map((o, index) => ({ ...o, index }));
  }
  // BullMQ fails a parent on its own only when its workers kept dying (stalled too often): no record then.
  const error = terminal?.type === 'failed' ? (terminal.data.error as FlowView['error']) ?? { code: 'FLOW_FAILED', message: terminal.reason ? splitFailedReason(terminal.reason).message : 'failed' }
    : state === 'failed' ? splitFailedReason(job.failedReason) : null;
  return {
    id, state, created_at: createdAt,
    finished_at: terminal ? terminal.at : job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
    progress: { completed, total: children.length, fraction },
    children, outputs, compose: job.data.compose,
    script: job.data.script ? {
      name: job.data.script.name, cells: job.data.script.cells.map((c) => c.label), grids: cellGrids(job.data.script), warnings: job.data.script.warnings,
    } : null,
    error, webhook: job.data.webhook,
  };
}

/**
 * Cancels a flow: marks the flow cancelled and cancels every child as DELETE /v1/jobs/{id} would (a queued child
 * is removed at once, a running one stops after its current step). The parent, started by the last child to end,
 * records `cancelled` once the children are settled, so a requested cancel is always `stopping`: the flow ends after
 * the request, however fast its children settle.
 */
export async function cancelFlow(ctx: ApiContext, tenant: string, id: string): Promise<CancelOutcome<FlowView>> {
  const job = await loadFlow(ctx, tenant, id);
  if (!job) throw new FarmError('FLOW_NOT_FOUND', 404, `no flow ${id}`);
  const state = await job.getState();
  if (state === 'completed' || state === 'failed' || (await readTerminalRecord(ctx.redis, ctx.keys, id))) {
    return { view: (await flowView(ctx, tenant, id))!, requested: false, stopping: false };
  }
  await requestCancel(ctx.redis, ctx.keys, id, ctx.cfg.retainFailedS);
  // Later stages first: removing a stage's source would otherwise release the stage to a worker.
  for (const c of [...job.data.children].reverse()) {
    await cancelJob(ctx, tenant, c.id).catch((e: unknown) => {
      if (!(e instanceof FarmError && e.code === 'JOB_NOT_FOUND')) throw e;
    });
  }
  ctx.log.info({ flowId: id, tenant, state }, 'flow cancel requested');
  return { view: (await flowView(ctx, tenant, id))!, requested: true, stopping: true };
}
