import { Job, Queue, UnrecoverableError, WaitingChildrenError, Worker, type ConnectionOptions } from 'bullmq';
import {
  appendJobEvent, attemptNumber, CANCELLED_REASON, isCancelledReason, jobFailure, isCancelRequested, leftWaiting, outputUrl, readTerminalRecord, recordTerminalEvent,
  requestCancel, splitFailedReason, throttledErrorLog, type EventContext, type WorkerConfig, type FarmKeys, type GenerateJobData, type GenerateJobResult,
  type Logger, type Storage, type TerminalRecord,
} from '@darkroom/farm';
import {
  animationContentType, enqueueFlowWebhook, flowAnimationKey, flowGridKey, flowOutputContentType, flowOutputFileName, FLOWS_QUEUE, flowWorkerOptions,
  type FlowEventTarget, type FlowJobData, type FlowJobResult, type FlowOutputRecord,
} from '@darkroom/farm/flows.js';
import type { Redis } from 'ioredis';
import type { AnimationRequest, ComposedGrid, ComposeRequest } from './flow-compose.js';
import { ComposeFailed, ComposeHost } from './flow-compose-host.js';

export interface FlowProcessorContext {
  cfg: WorkerConfig;
  redis: Redis;
  keys: FarmKeys;
  storage: Storage;
  events: EventContext;
  generate: Queue;
  log: Logger;
  workerName: string;
  /** The thread that decodes the cells and encodes the grids. */
  composer: ComposeHost;
}

/** How long a failing or cancelled flow waits for its running children to stop before it records its end. */
const SETTLE_MS = 30_000;
const SETTLE_POLL_MS = 200;

type ChildJob = Job<GenerateJobData, GenerateJobResult>;

/** A flow's URL for a grid or animation on folder storage; S3 presigns it. Children's images keep their jobs' URLs. */
async function outputView(ctx: FlowProcessorContext, flowId: string, o: FlowOutputRecord): Promise<Record<string, unknown>> {
  const url = o.kind === 'image' && o.job_id !== null && o.child_index !== null
    ? await outputUrl(ctx.storage, ctx.cfg, o.job_id, o.child_index, o.key)
    : (await ctx.storage.presignedUrl(o.key, ctx.cfg.outputUrlTtlS)) ?? `${ctx.cfg.publicUrl}/v1/flows/${flowId}/outputs/${flowOutputFileName(o)}`;
  return {
    index: o.index, kind: o.kind, content_type: flowOutputContentType(o), child: o.child, job_id: o.job_id, url, seed: o.seed, subseed: o.subseed, infotext: o.infotext,
  };
}

/**
 * Records the flow's end once (the same record the generation jobs use, so a rerun finds it), then queues its
 * `flow.<event>` webhook, whose message id is fixed per flow. A completed record hands back its result; a failed or
 * cancelled one is thrown again, unrecoverable, so BullMQ spends no retry on it.
 */
async function finish(
  ctx: FlowProcessorContext, flow: FlowEventTarget, outcome: Omit<TerminalRecord<FlowJobResult>, 'at'>,
): Promise<FlowJobResult> {
  const { record } = await recordTerminalEvent<FlowJobResult>(ctx.events, { id: flow.id, tenant: flow.tenant, webhook: null }, outcome);
  return replay(ctx, flow, record);
}

async function replay(ctx: FlowProcessorContext, flow: FlowEventTarget, record: TerminalRecord<FlowJobResult>): Promise<FlowJobResult> {
  await enqueueFlowWebhook(ctx.events, flow, { id: '', type: record.type, at: record.at, data: record.data });
  if (record.type === 'completed' && record.result) return record.result;
  throw new UnrecoverableError(record.reason ?? CANCELLED_REASON);
}

/**
 * Stops the children that have not ended: each gets the cancel key (a running one stops after its current step,
 * a queued one fails at once when a worker takes it), and the queued ones are also removed so they wait behind
 * nobody. Then waits, bounded, until none is running, so the flow's end is the last thing that happens to it.
 */
async function stopChildren(ctx: FlowProcessorContext, flow: FlowEventTarget, children: readonly (ChildJob | null)[]): Promise<void> {
  // Later stages first: removing a stage's source would otherwise release the stage to a worker.
  for (const child of [...children].reverse()) {
    if (!child) continue;
    const state = await child.getState();
    if (state === 'completed' || state === 'failed' || state === 'unknown') continue;
    await requestCancel(ctx.redis, ctx.keys, child.id!, ctx.cfg.retainFailedS);
    if (state === 'active') continue;
    try {
      await child.remove();
      // A child that never started still counted as waiting for its tenant (fair share).
      if (child.attemptsStarted === 0) await leftWaiting(ctx.redis, ctx.keys, flow.tenant);
      await recordTerminalEvent(ctx.events, { id: child.id!, tenant: flow.tenant, webhook: null }, {
        type: 'cancelled', data: { before_start: true, flow_id: flow.id }, reason: CANCELLED_REASON,
      });
    } catch {
      // A worker took it meanwhile: the cancel key reaches it.
    }
  }
  const deadline = Date.now() + SETTLE_MS;
  while (Date.now() < deadline) {
    const states = await Promise.all(children.map((c) => (c ? c.getState() : Promise.resolve('unknown'))));
    if (!states.includes('active')) return;
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
  }
  ctx.log.warn({ flowId: flow.id }, 'children still running after the flow ended; their cancel keys stop them');
}

async function readBytes(ctx: FlowProcessorContext, o: FlowOutputRecord): Promise<Uint8Array> {
  const bytes = await ctx.storage.get(o.key);
  if (!bytes) throw jobFailure({ code: 'OUTPUT_MISSING', message: `${o.key} (child ${o.child}) is gone from storage` });
  return bytes;
}

function gridRecord(key: string, n: number, from: FlowOutputRecord | undefined, infotext: string): FlowOutputRecord {
  return { index: n, kind: 'grid', key, child: null, job_id: null, child_index: null, seed: from?.seed ?? 0, subseed: from?.subseed ?? 0, infotext };
}

/**
 * Composes on the compose thread; a composition the inputs cannot make (a grid too small, frames of different
 * sizes) fails the flow, a thread that died is retried.
 */
async function onComposer<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof ComposeFailed) {
      throw jobFailure({ code: e.code, message: e.message, retryable: e.code === 'COMPOSE_FAILED' });
    }
    throw e;
  }
}

/** `compose: grid`: one grid of every image (A1111's image_grid); the outputs are the grid, then the images. */
async function composePlain(
  ctx: FlowProcessorContext, data: FlowJobData, flowId: string, perChild: readonly FlowOutputRecord[][],
): Promise<{ grids: FlowOutputRecord[]; outputs: FlowOutputRecord[] }> {
  const images = perChild.flat();
  const spec = data.compose;
  if (!spec || images.length === 0) return { grids: [], outputs: images };
  const bytes = await Promise.all(images.map((o) => readBytes(ctx, o)));
  const [composed] = await onComposer(() => ctx.composer.compose({ kind: 'grid', compose: spec, images: bytes, infotext: images[0]!.infotext }));
  const key = flowGridKey(data.tenant, flowId, 0);
  await ctx.storage.put(key, composed!.png, 'image/png');
  const grid = gridRecord(key, 0, images[0], composed!.infotext);
  return { grids: [grid], outputs: [grid, ...images] };
}

/**
 * A script's grids, composed from each cell's first image with A1111's labels (core/scripts), each carrying its
 * cell's infotext with the script's keys; the outputs in the order A1111's API returns them.
 */
async function composeScript(
  ctx: FlowProcessorContext, data: FlowJobData, flowId: string, perChild: readonly FlowOutputRecord[][],
): Promise<{ grids: FlowOutputRecord[]; outputs: FlowOutputRecord[] }> {
  const s = data.script!;
  // A staged script composes no grid: its images are those of the stages it names (txt2img2img's last, the
  // animator's every frame), then its animations.
  if (s.imagesFrom) {
    const images = s.imagesFrom.flatMap((i) => perChild[i] ?? []);
    return { grids: [], outputs: [...images, ...(await composeAnimations(ctx, data, flowId, perChild))] };
  }
  const cells = await Promise.all(perChild.map(async (imgs) => (imgs[0] ? readBytes(ctx, imgs[0]) : null)));
  const request: ComposeRequest = { kind: 'script', script: s, cells, infotexts: perChild.map((imgs) => imgs[0]?.infotext ?? '') };
  const composed: ComposedGrid[] = await onComposer(() => ctx.composer.compose(request));
  const records: FlowOutputRecord[] = [];
  for (const [n, g] of composed.entries()) {
    const key = flowGridKey(data.tenant, flowId, n);
    await ctx.storage.put(key, g.png, 'image/png');
    records.push(gridRecord(key, n, perChild[s.layout.grids[n]!.infotext.cell]?.[0], g.infotext));
  }
  const outputs = s.outputs.flatMap((o) => (o.kind === 'grid' ? [records[o.grid]!] : o.kind === 'cell-first' ? perChild[o.cell]!.slice(0, 1) : perChild[o.cell]!));
  const animations = await composeAnimations(ctx, data, flowId, perChild);
  return { grids: records, outputs: [...outputs, ...animations] };
}

/**
 * The script's animations (seed travel's video), each assembled from its cells' first images on the compose
 * thread and stored beside the grids; each record carries its first frame's seeds and infotext.
 */
async function composeAnimations(
  ctx: FlowProcessorContext, data: FlowJobData, flowId: string, perChild: readonly FlowOutputRecord[][],
): Promise<FlowOutputRecord[]> {
  const records: FlowOutputRecord[] = [];
  for (const [n, animation] of (data.script?.animations ?? []).entries()) {
    // Each cell's PNG is read and sent once however many frames show it.
    const cells = [...new Set(animation.frames)];
    const slot = new Map(cells.map((c, i) => [c, i]));
    const firsts = cells.map((c) => {
      const first = perChild[c]?.[0];
      if (!first) throw jobFailure({ code: 'COMPOSE_FAILED', message: `cell ${c} of animation ${n} made no image` });
      return first;
    });
    const request: AnimationRequest = {
      animation, images: await Promise.all(firsts.map((o) => readBytes(ctx, o))), frames: animation.frames.map((c) => slot.get(c)!),
    };
    const bytes = await onComposer(() => ctx.composer.animate(request));
    const key = flowAnimationKey(data.tenant, flowId, n, animation.format);
    const contentType = animationContentType(animation.format);
    await ctx.storage.put(key, bytes, contentType);
    const from = perChild[animation.frames[0]!]![0]!;
    records.push({
      index: 0, kind: 'animation', key, content_type: contentType, child: null, job_id: null, child_index: null, seed: from.seed, subseed: from.subseed, infotext: from.infotext,
    });
  }
  return records;
}

/**
 * The processor of the `flows` queue: it runs when the last child completed, or as soon as one failed for good,
 * or once a cancelled flow's children all ended. It never renders; it composes and records the flow's end.
 */
export function flowProcessor(ctx: FlowProcessorContext) {
  return async (job: Job<FlowJobData, FlowJobResult>, token?: string): Promise<FlowJobResult> => {
    const data = job.data;
    const flowId = job.id!;
    const flow: FlowEventTarget = { id: flowId, tenant: data.tenant, webhook: data.webhook };
    const log = ctx.log.child({ flowId, tenant: data.tenant });
    // A rerun after the end was recorded (the worker died before BullMQ heard) repeats it and nothing else.
    const prior = await readTerminalRecord<FlowJobResult>(ctx.redis, ctx.keys, flowId);
    if (prior) return replay(ctx, flow, prior);

    const children = await Promise.all(data.children.map((c) => Job.fromId<GenerateJobData, GenerateJobResult>(ctx.generate, c.id).then((j) => j ?? null)));
    if (await isCancelRequested(ctx.redis, ctx.keys, flowId)) {
      await stopChildren(ctx, flow, children);
      log.info('flow cancelled');
      return finish(ctx, flow, { type: 'cancelled', data: {}, reason: CANCELLED_REASON });
    }
    const states = await Promise.all(children.map((c) => (c ? c.getState() : Promise.resolve('missing'))));
    const failed = states.findIndex((s, i) => s === 'failed' && !isCancelledReason(children[i]!.failedReason));
    if (failed >= 0) {
      const child = children[failed]!;
      const error = splitFailedReason(child.failedReason);
      await stopChildren(ctx, flow, children);
      log.warn({ child: failed, code: error.code }, 'flow failed: a child failed for good');
      return finish(ctx, flow, {
        type: 'failed', data: { error: { ...error, child: failed }, child_id: child.id },
        reason: `${error.code}: child ${failed} (${child.id}) failed: ${error.message}`,
      });
    }
    // A child cancelled on its own (DELETE /v1/jobs/{id}) leaves a hole no grid can fill: the flow ends cancelled.
    const cancelled = states.findIndex((s, i) => s === 'missing' || (s === 'failed' && isCancelledReason(children[i]!.failedReason)));
    if (cancelled >= 0) {
      await stopChildren(ctx, flow, children);
      log.info({ child: cancelled }, 'flow cancelled: a child was cancelled');
      return finish(ctx, flow, { type: 'cancelled', data: { child: cancelled }, reason: CANCELLED_REASON });
    }
    if (states.some((s) => s !== 'completed')) {
      // Started early with children still to run (a retried failure that then recovered): wait for them again.
      if (token && (await job.moveToWaitingChildren(token))) throw new WaitingChildrenError();
      throw new Error('FLOW_CHILDREN_PENDING: children are still running');
    }

    // Each child's images, in child order.
    const perChild: FlowOutputRecord[][] = children.map((child, i) => (child!.returnvalue?.outputs ?? []).map((o) => ({
      index: 0, kind: 'image' as const, key: o.key, child: i, job_id: child!.id!, child_index: o.index, seed: o.seed, subseed: o.subseed, infotext: o.infotext,
    })));
    const { grids, outputs: ordered } = data.script ? await composeScript(ctx, data, flowId, perChild) : await composePlain(ctx, data, flowId, perChild);
    const outputs = ordered.map((o, index) => ({ ...o, index }));
    const result: FlowJobResult = { outputs, grids: grids.length, worker: ctx.workerName, attempt: attemptNumber(job) };
    log.info({ grids: grids.length, outputs: outputs.length }, 'flow composed');
    return finish(ctx, flow, {
      type: 'completed', data: { outputs: await Promise.all(outputs.map((o) => outputView(ctx, flowId, o))) }, result,
    });
  };
}

/** Most parents walked up from a child to its flow: the longest chain a flow can hold. */
const MAX_CHAIN = 256;

/**
 * The flow a child belongs to: its BullMQ parent, or for a dependent stage (txt2img2img's img2img, an animator
 * frame) the parent of the stage that waits on it, and so on up to the flow.
 */
async function flowOf(ctx: FlowProcessorContext, job: ChildJob): Promise<string | null> {
  let parent = job.parent;
  for (let depth = 0; parent && depth <= MAX_CHAIN; depth++) {
    if (!parent.id) return null;
    if (parent.queueKey.endsWith(`:${FLOWS_QUEUE}`)) return parent.id;
    const stage = await Job.fromId<GenerateJobData, GenerateJobResult>(ctx.generate, parent.id);
    parent = stage?.parent;
  }
  return null;
}

async function countCompleted(ctx: FlowProcessorContext, ids: readonly string[]): Promise<number> {
  const states = await Promise.all(ids.map((id) => ctx.generate.getJobState(id)));
  return states.filter((s) => s === 'completed').length;
}

/**
 * `flow.progress`: each child that completes appends a progress event to its flow's log (and its webhook, when
 * the flow asked for it), a dependent stage's too. Best effort: the flow's own end is recorded by the parent, not
 * here.
 */
export function watchFlowChildren(worker: Worker<GenerateJobData, GenerateJobResult>, ctx: FlowProcessorContext, flows: Queue): void {
  worker.on('completed', (job: ChildJob, result: GenerateJobResult) => {
    if (!job.parent) return;
    let flowId: string | undefined;
    void (async () => {
      flowId = (await flowOf(ctx, job)) ?? undefined;
      if (!flowId) return;
      const flowJob = await Job.fromId<FlowJobData, FlowJobResult>(flows, flowId);
      if (!flowJob || (await readTerminalRecord(ctx.redis, ctx.keys, flowId))) return;
      const index = flowJob.data.children.findIndex((c) => c.id === job.id);
      // Stages nested under other children are not the flow's own dependencies: a staged flow's children are
      // counted by state (chains are short next to a grid, whose cells all hang straight under the flow).
      const staged = flowJob.data.children.some((c) => c.from !== undefined);
      const completed = staged
        ? await countCompleted(ctx, flowJob.data.children.map((c) => c.id))
        : ((await flowJob.getDependenciesCount({ processed: true })).processed ?? 0);
      const target: FlowEventTarget = { id: flowId, tenant: flowJob.data.tenant, webhook: flowJob.data.webhook };
      const outputs = await Promise.all(result.outputs.map(async (o) => ({
        index: o.index, url: await outputUrl(ctx.storage, ctx.cfg, job.id!, o.index, o.key), seed: o.seed, subseed: o.subseed, infotext: o.infotext,
      })));
      const event = await appendJobEvent(ctx.events, { id: target.id, tenant: target.tenant, webhook: null }, 'progress', {
        child: index, job_id: job.id, state: 'completed', completed, total: flowJob.data.children.length, outputs,
      });
      await enqueueFlowWebhook(ctx.events, target, { ...event, type: 'progress' });
    })().catch((e: Error) => ctx.log.warn({ jobId: job.id, flowId, err: e.message }, 'could not publish flow progress'));
  });
}

/** The `flows` queue worker of a worker process, with its children's progress reported and its compose thread. */
export function startFlowWorker(
  base: Omit<FlowProcessorContext, 'composer'>, generate: Worker<GenerateJobData, GenerateJobResult>, connection: ConnectionOptions,
): { worker: Worker<FlowJobData, FlowJobResult>; close(): Promise<void> } {
  const ctx: FlowProcessorContext = { ...base, composer: new ComposeHost() };
  const flows = new Queue(FLOWS_QUEUE, { connection, prefix: ctx.cfg.queuePrefix });
  flows.on('error', throttledErrorLog(ctx.log, 'queue flows: redis error'));
  watchFlowChildren(generate, ctx, flows);
  const worker = new Worker<FlowJobData, FlowJobResult>(FLOWS_QUEUE, flowProcessor(ctx), {
    ...flowWorkerOptions(ctx.cfg, connection), name: `${ctx.workerName}-flows`,
  });
  worker.on('error', throttledErrorLog(ctx.log, 'flow worker error', 30_000));
  return {
    worker,
    async close() {
      await worker.close();
      await flows.close();
      await ctx.composer.close();
    },
  };
}
