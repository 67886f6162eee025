import { Job, type JobsOptions } from 'bullmq';
import {
  appendJobEvent, checkWebhookUrlSyntax, fairPriority, FarmError, firstQueuedEvent, generateJobOptions, idempotentJobId, Img2ImgRequest, isFarmError, newJobId, outputKey, QUEUE_NAMES,
  sha256Hex, Txt2ImgRequest, type GenerateJobData, type GenerateKind, type GenerateRequest,
} from '@darkroom/farm';
import {
  enqueueFlowWebhook, FLOWS_QUEUE, flowJobOptions, FlowRequest, type FlowChildRef, type FlowJobData, type FlowScriptPlan, type GridCompose,
} from '@darkroom/farm/flows.js';
import { eventContext, type ApiContext } from './context.js';
import { flowScriptName } from '@darkroom/core/scripts/index.js';
import { planFarmFlowScript } from './flow-farm-scripts.js';
import { planFlowScript, type PlannedChild } from './flow-scripts.js';
import { parseWith } from './http-errors.js';
import { prepareGenerateJob } from './submit.js';
import { checkIdempotencyKey, claimIdempotentId, idempotencyKeyBusy, idempotencyKeyReused } from './idempotency.js';

/** A child's refusal names the child: `children[3].steps`. */
function inChild(e: unknown, i: number): unknown {
  if (!isFarmError(e)) return e;
  const field = e.field === undefined ? `children[${i}]` : `children[${i}].${e.field}`;
  const message = e.field !== undefined && e.message.startsWith(`${e.field}`) ? `children[${i}].${e.message}` : `children[${i}]: ${e.message}`;
  return new FarmError(e.code, e.status, message, field, e.file);
}

function parseChild(body: Record<string, unknown>, i: number): PlannedChild {
  try {
    const kind: GenerateKind = 'init_images' in body ? 'img2img' : 'txt2img';
    const request: GenerateRequest = kind === 'img2img' ? parseWith(Img2ImgRequest, body) : parseWith(Txt2ImgRequest, body);
    if (request.webhook !== null) throw new FarmError('INVALID_REQUEST', 400, 'webhook: a flow notifies through its own webhook, not its children\'s', 'webhook');
    return { kind, request };
  } catch (e) {
    throw inChild(e, i);
  }
}

/** Images a request makes: batch_size per iteration, n_iter iterations. */
function imageCount(r: GenerateRequest): number {
  return r.batch_size * r.n_iter;
}

/** The grid must hold every image the children make; a grid larger than that is allowed (cells left blank). */
function checkCompose(compose: GridCompose | null, images: number): void {
  if (!compose || compose.rows === null || compose.cols === null) return;
  if (compose.rows * compose.cols < images) {
    throw new FarmError('INVALID_REQUEST', 400, `compose: a ${compose.rows}x${compose.cols} grid cannot hold the ${images} images the children make`, 'compose.rows');
  }
}

/** A flow made now carries its children's ids; a replay, which makes nothing, reads them from the flow. */
export type FlowSubmitted = { id: string; replayed: false; children: string[] } | { id: string; replayed: true };

/**
 * The flow id for a request: fresh, or fixed by its Idempotency-Key (in a namespace of its own: the same key on
 * /v1/txt2img names another job), in which case a flow already made is replayed and a concurrent retry is told to
 * come back.
 */
async function withIdempotency(
  ctx: ApiContext, tenant: string, key: string | undefined, requestHash: string, create: (id: string) => Promise<FlowSubmitted>,
): Promise<FlowSubmitted> {
  if (key === undefined) return create(newJobId());
  checkIdempotencyKey(key);
  const id = idempotentJobId(tenant, `flows\0${key}`);
  const made = async (): Promise<boolean> => {
    const existing = await Job.fromId<FlowJobData>(ctx.flows.flows, id);
    if (!existing) return false;
    if (existing.data.tenant !== tenant || existing.data.requestHash !== requestHash) throw idempotencyKeyReused();
    // A replay queues the flow's `queued` webhook again, in case the first request's queueing of it failed; its
    // message id is fixed per flow, so one already queued or delivered is not queued twice.
    const queued = existing.data.webhook?.events.includes('queued') ? await firstQueuedEvent(ctx.redis, ctx.keys, id) : null;
    if (queued) await enqueueFlowWebhook(eventContext(ctx), { id, tenant, webhook: existing.data.webhook }, { ...queued, type: 'queued' });
    return true;
  };
  if (await made()) return { id, replayed: true };
  const claim = await claimIdempotentId(ctx.redis, ctx.keys.idempotencyClaim(id));
  if (claim === null) throw idempotencyKeyBusy();
  try {
    // Checked again under the claim: another request may have made the flow and let its claim go since.
    if (await made()) return { id, replayed: true };
    return await create(id);
  } finally {
    // Made or refused (a refused request must not block a corrected retry), the claim has done its work.
    await claim.release();
  }
}

function parseBase(body: Record<string, unknown>): PlannedChild {
  try {
    const kind: GenerateKind = 'init_images' in body ? 'img2img' : 'txt2img';
    const request: GenerateRequest = kind === 'img2img' ? parseWith(Img2ImgRequest, body) : parseWith(Txt2ImgRequest, body);
    if (request.script_name !== null) throw new FarmError('INVALID_REQUEST', 400, 'script_name: name the script in `script`', 'script_name');
    if (request.webhook !== null) throw new FarmError('INVALID_REQUEST', 400, 'webhook: a flow notifies through its own webhook', 'webhook');
    return { kind, request };
  } catch (e) {
    if (!isFarmError(e)) throw e;
    return rethrow(new FarmError(e.code, e.status, `base.${e.message}`, e.field === undefined ? 'base' : `base.${e.field}`));
  }
}

function rethrow(e: Error): never {
  throw e;
}

/** The children of a `/v1/flows` request: its own list, or its script's cells over its base. */
async function flowChildren(ctx: ApiContext, tenant: string, parsed: FlowRequest): Promise<{ children: PlannedChild[]; script?: FlowScriptPlan }> {
  if (parsed.script) {
    if (parsed.children) throw new FarmError('INVALID_REQUEST', 400, 'children: send children or a script with its base, not both', 'children');
    if (!parsed.base) throw new FarmError('INVALID_REQUEST', 400, 'base: a script needs the request it runs over', 'base');
    if (parsed.compose) throw new FarmError('INVALID_REQUEST', 400, 'compose: a script composes its own grids', 'compose');
    const flowOnly = flowScriptName(parsed.script.name);
    if (flowOnly) return planFarmFlowScript(ctx, flowOnly, parsed.script.args, parsed.script.options, parsed.base, parsed.animation);
    if (parsed.script.options !== undefined) {
      throw new FarmError('INVALID_REQUEST', 400, 'script.options: an A1111 script takes script.args; only img2img video and animator take options', 'script.options');
    }
    const base = parseBase(parsed.base);
    const planned = await planFlowScript(ctx, tenant, parsed.script.name, parsed.script.args, base.kind, base.request, {
      status: 400, nameField: 'script.name', argsField: 'script.args', animation: parsed.animation,
    });
    if (parsed.animation && !planned.script.animations) {
      throw new FarmError('INVALID_REQUEST', 400, `animation: ${planned.script.name} makes no animation with these arguments`, 'animation');
    }
    return planned;
  }
  if (!parsed.children) throw new FarmError('INVALID_REQUEST', 400, 'children: send children, or a script with its base', 'children');
  if (parsed.base) throw new FarmError('INVALID_REQUEST', 400, 'base: only a script takes a base', 'base');
  if (parsed.animation) throw new FarmError('INVALID_REQUEST', 400, 'animation: only a script makes animations', 'animation');
  // Every child is checked before any is prepared, so a bad last child stores nothing for the first ones.
  const children = parsed.children.map((c, i) => parseChild(c, i));
  checkCompose(parsed.compose, children.reduce((n, c) => n + imageCount(c.request), 0));
  return { children };
}

/** `/v1/flows`. */
export async function submitFlow(ctx: ApiContext, tenant: string, body: unknown, opts: { idempotencyKey?: string }): Promise<FlowSubmitted> {
  const requestHash = sha256Hex(JSON.stringify(body ?? null));
  const parsed = parseWith(FlowRequest, body);
  return withIdempotency(ctx, tenant, opts.idempotencyKey, requestHash, async (id) => {
    if (parsed.webhook) {
      const problem = checkWebhookUrlSyntax(parsed.webhook.url, ctx.cfg.webhookAllowlist);
      if (problem) throw new FarmError('WEBHOOK_URL_REFUSED', 400, `webhook.url: ${problem}`, 'webhook.url');
    }
    const { children, script } = await flowChildren(ctx, tenant, parsed);
    return queueFlow(ctx, tenant, id, requestHash, 'v1', children, { compose: parsed.compose, webhook: parsed.webhook, ...(script ? { script } : {}) });
  });
}

/** An A1111 script request on `/sdapi/v1/txt2img` or `img2img` as a flow; `request` is ready as /sdapi makes jobs. */
export async function submitScriptFlow(
  ctx: ApiContext, tenant: string, kind: GenerateKind, request: GenerateRequest, rawBody: unknown, opts: { idempotencyKey?: string },
): Promise<FlowSubmitted> {
  const requestHash = sha256Hex(JSON.stringify(rawBody ?? null));
  return withIdempotency(ctx, tenant, opts.idempotencyKey, requestHash, async (id) => {
    const { children, script } = await planFlowScript(ctx, tenant, request.script_name ?? '', request.script_args, kind, request, {
      status: 422, nameField: 'script_name', argsField: 'script_args',
    });
    return queueFlow(ctx, tenant, id, requestHash, 'sdapi', children, { compose: null, webhook: null, script });
  });
}

interface FlowChildNode {
  name: string;
  queueName: string;
  data: GenerateJobData;
  opts: JobsOptions;
  children?: FlowChildNode[];
}

/**
 * The BullMQ tree of a flow's children: a dependent stage is the BullMQ parent of the child it starts from, so it
 * waits in `waiting-children` until that image exists; a child that fails fails its stage (and so the flow) at once.
 * Independent children hang straight under the flow's parent. An animator's frames nest this way into a chain (the
 * last frame at the top): BullMQ releases each frame the moment the one before completes, on any free worker, and
 * a worker lost mid-frame redoes only that frame, where a flow parent adding one frame at a time would need a run
 * (and a lock, and a retry story) of its own per frame.
 */
function flowTree(refs: readonly FlowChildRef[], nodes: readonly FlowChildNode[]): FlowChildNode[] {
  const dependents = new Map<number, number>();
  for (const [i, r] of refs.entries()) {
    if (r.from === undefined) continue;
    if (dependents.has(r.from)) throw new FarmError('INVALID_REQUEST', 400, `child ${r.from} feeds two stages; a flow runs one stage per image`);
    dependents.set(r.from, i);
  }
  const build = (i: number): FlowChildNode => {
    const r = refs[i]!;
    const node = { ...nodes[i]! };
    if (r.from !== undefined) {
      const inner = build(r.from);
      node.children = [{ ...inner, opts: { ...inner.opts, continueParentOnFailure: false, failParentOnFailure: true } }];
    }
    return node;
  };
  return refs.map((_, i) => i).filter((i) => !dependents.has(i)).map(build);
}

/**
 * Prepares each child (inputs stored, seeds drawn) as a job of its own would be, and adds the parent and its
 * children in one BullMQ transaction. The `queued` events go first, so a worker's `started` follows them.
 */
async function queueFlow(
  ctx: ApiContext, tenant: string, id: string, requestHash: string, source: 'v1' | 'sdapi', children: readonly PlannedChild[],
  spec: { compose: GridCompose | null; webhook: FlowJobData['webhook']; script?: FlowScriptPlan },
): Promise<FlowSubmitted> {
  const prepared: { ref: FlowChildRef; data: GenerateJobData }[] = [];
  for (const [i, c] of children.entries()) {
    const childId = newJobId();
    try {
      const jobData = await prepareGenerateJob(ctx, tenant, c.kind, c.request, childId, requestHash, source);
      const ref: FlowChildRef = { id: childId, kind: c.kind };
      if (c.from) {
        // A dependent stage reads its init image where the earlier child writes it.
        const from = prepared[c.from.child];
        if (!from) throw new FarmError('INVALID_REQUEST', 400, `child ${i} starts from child ${c.from.child}, which comes after it`);
        jobData.inputKeys = { initImages: [outputKey(tenant, from.ref.id, c.from.image)], mask: null };
        if (c.from.transform) jobData.initTransform = c.from.transform;
        ref.from = c.from.child;
      }
      prepared.push({ ref, data: jobData });
    } catch (e) {
      throw inChild(e, i);
    }
  }
  const data: FlowJobData = {
    tenant, children: prepared.map((p) => p.ref), compose: spec.compose, webhook: spec.webhook, requestHash, submittedAt: Date.now(),
    ...(spec.script ? { script: spec.script } : {}),
  };
  const events = eventContext(ctx);
  const queued = await appendJobEvent(events, { id, tenant, webhook: null }, 'queued', { children: prepared.length, ...(spec.script ? { script: spec.script.name } : {}) });
  const childOpts = generateJobOptions(ctx.cfg);
  const nodes: FlowChildNode[] = [];
  for (const [i, p] of prepared.entries()) {
    await appendJobEvent(events, { id: p.ref.id, tenant, webhook: null }, 'queued', { kind: p.ref.kind, flow_id: id, child: i });
    nodes.push({
      name: p.ref.kind, queueName: QUEUE_NAMES.generate, data: p.data,
      // A child that fails for good starts the parent at once, which fails the flow with that child's error.
      opts: { ...childOpts, jobId: p.ref.id, priority: await fairPriority(ctx.redis, ctx.keys, tenant), continueParentOnFailure: true },
    });
  }
  await ctx.flows.producer.add({ name: 'flow', queueName: FLOWS_QUEUE, data, opts: { ...flowJobOptions(ctx.cfg), jobId: id }, children: flowTree(prepared.map((p) => p.ref), nodes) });
  await enqueueFlowWebhook(events, { id, tenant, webhook: data.webhook }, { ...queued, type: 'queued' });
  ctx.metrics.submitted.inc({ kind: 'flow', source });
  ctx.log.info({ flowId: id, tenant, children: prepared.length, script: spec.script?.name }, 'flow queued');
  return { id, replayed: false, children: prepared.map((p) => p.ref.id) };
}
