import { z } from 'zod';
import { FlowProducer, Queue, type ConnectionOptions, type DefaultJobOptions, type WorkerOptions } from 'bullmq';
import type { FlowScriptName, GridLayout, ScriptName, ScriptOutput } from '@darkroom/core/scripts/index.js';
import type { AnimationFormat } from './animation.js';
import type { JobRunnerConfig, SharedConfig } from './config.js';
import type { EventContext } from './events.js';
import { JOB_STATES, JobView, OutputView, type GenerateKind, type JobState } from './schemas.js';
import type { WebhookJobData } from './jobs.js';
import { generateJobOptions, generateWorkerOptions } from './queues.js';

/**
 * A flow: one parent job on the `flows` queue whose children are ordinary generation jobs on `generate`, so
 * every worker takes them (BullMQ flows). The parent waits in `waiting-children` and runs when the last child
 * completed, or as soon as one failed for good (`continueParentOnFailure`): it then composes the grid, or fails
 * the flow with that child's error, or ends a cancelled one.
 */
export const FLOWS_QUEUE = 'flows';

/** Cells of one flow; a 16x16 plot is the largest grid a client is likely to ask for. */
export const MAX_FLOW_CHILDREN = 256;

export const FLOW_WEBHOOK_EVENTS = ['queued', 'progress', 'completed', 'failed', 'cancelled'] as const;
export type FlowWebhookEvent = (typeof FLOW_WEBHOOK_EVENTS)[number];

export const FlowWebhookSpec = z
  .strictObject({
    url: z.url({ protocol: /^https?$/ }).max(2048).describe('http(s) URL that receives signed POSTs'),
    events: z.array(z.enum(FLOW_WEBHOOK_EVENTS)).min(1).default(['completed', 'failed', 'cancelled'])
      .describe('which flow events to deliver (`flow.<event>`); progress comes once per finished child'),
  })
  .describe('Standard Webhooks delivery for this flow');
export type FlowWebhookSpec = z.infer<typeof FlowWebhookSpec>;

export const GridCompose = z.strictObject({
  kind: z.literal('grid'),
  rows: z.number().int().min(1).max(MAX_FLOW_CHILDREN).nullable().default(null)
    .describe('rows of the grid; null = A1111\'s default, the rounded square root of the image count'),
  cols: z.number().int().min(1).max(MAX_FLOW_CHILDREN).nullable().default(null)
    .describe('columns; null = as many as the rows need to hold every image'),
}).describe('one grid of every child\'s images, in child order, as A1111\'s images.image_grid lays it out');
export type GridCompose = z.infer<typeof GridCompose>;

export const FlowScript = z.strictObject({
  name: z.string().min(1).max(100)
    .describe('an A1111 script title, any case ("prompt matrix", "x/y/z plot", "seed travel", ...), or a flow-only script: "img2img video", "animator"'),
  args: z.array(z.unknown()).max(64).default([]).describe('an A1111 script\'s arguments in A1111\'s script_args order'),
  options: z.record(z.string(), z.unknown()).optional()
    .describe('a flow-only script\'s options by name (img2img video: input, seed, fps; animator: frames, prompts, zoom, ...); see docs/farm.md'),
}).describe('a script run over `base`: its cells become the children, its grids and animations the parent\'s outputs');

export const ANIMATION_FORMATS = ['webp', 'gif'] as const satisfies readonly AnimationFormat[];

export const FlowAnimationSettings = z.strictObject({
  formats: z.array(z.enum(ANIMATION_FORMATS)).min(1).max(ANIMATION_FORMATS.length).default(['webp'])
    .refine((f) => new Set(f).size === f.length, 'each format once')
    .describe('the files written for each of the script\'s animations, in this order'),
  lossless: z.boolean().default(true).describe('WebP frames lossless (the default) or lossy at quality 90; GIF is always palette-quantised'),
}).describe('the animated images a script writes (seed travel\'s video)');
export type FlowAnimationSettings = z.infer<typeof FlowAnimationSettings>;

/**
 * `/v1/flows`: explicit children, each a `/v1/txt2img` or `/v1/img2img` body (img2img when it has
 * `init_images`), or an A1111 script over a base request. Children are checked one by one with the job schemas,
 * so a bad field is named `children[3].steps` (`base.steps` for a script's base).
 */
export const FlowRequest = z.strictObject({
  children: z.array(z.record(z.string(), z.unknown())).min(1).max(MAX_FLOW_CHILDREN).optional()
    .describe('the generation requests, each a /v1/txt2img body, or a /v1/img2img body when it has init_images'),
  script: FlowScript.optional(),
  base: z.record(z.string(), z.unknown()).optional().describe('with `script`: the /v1/txt2img or /v1/img2img body the script runs over'),
  compose: GridCompose.nullable().default(null).describe('with `children`: what the parent makes of their images once all completed'),
  animation: FlowAnimationSettings.nullable().default(null)
    .describe('with a script that makes animations (seed travel): which files to write; null = one lossless animated WebP each'),
  webhook: FlowWebhookSpec.nullable().default(null),
}).describe('a flow of generation jobs spread over the workers: `children`, or `script` with `base`');
export type FlowRequest = z.infer<typeof FlowRequest>;

/**
 * One animated image the parent assembles from the cells' first images (core's AnimationSpec, in one format):
 * `frames` are cell indices in frame order, a cell coming back as often as the animation shows it.
 */
export interface FlowAnimation {
  frames: number[];
  fps: number;
  /** Milliseconds each frame shows, one per frame, in place of 1000 / fps (img2img video keeps its input's timing). */
  delays?: number[];
  label: string;
  format: AnimationFormat;
  lossless: boolean;
}

/** What the parent keeps of a script's plan to compose its grids: the layout, the output order, each cell's size. */
export interface FlowScriptPlan {
  name: ScriptName | FlowScriptName;
  layout: GridLayout;
  outputs: ScriptOutput[];
  cells: { label: string; width: number; height: number }[];
  warnings: string[];
  /** A staged script (txt2img2img, the animator): the children whose images are the script's, in place of `outputs`. */
  imagesFrom?: number[];
  /** Animations (seed travel's video), each in every format asked for; their outputs follow the images. */
  animations?: FlowAnimation[];
}

export interface FlowChildRef {
  id: string;
  kind: GenerateKind;
  /** A dependent stage: an img2img of an image of the child at this index, run (as its BullMQ parent) after it. */
  from?: number;
}

/** What the API puts on the `flows` queue; the children carry GenerateJobData on `generate`. */
export interface FlowJobData {
  tenant: string;
  children: FlowChildRef[];
  compose: GridCompose | null;
  /** A script flow: the children are the plan's cells, in order, and the parent composes the plan's grids. */
  script?: FlowScriptPlan;
  webhook: FlowWebhookSpec | null;
  /** SHA-256 of the raw request, so a reused Idempotency-Key with a different body is refused. */
  requestHash: string;
  submittedAt: number;
}

export const FLOW_OUTPUT_KINDS = ['grid', 'image', 'animation'] as const;

export interface FlowOutputRecord {
  index: number;
  /** A grid or an animation the parent made, or one child's image. */
  kind: (typeof FLOW_OUTPUT_KINDS)[number];
  key: string;
  /** `image/png` when absent (records written before animations existed). */
  content_type?: string;
  /** The child (index in `children`) an image came from; null for what the parent made. */
  child: number | null;
  /** The child job holding the image; null for what the parent made. */
  job_id: string | null;
  /** The image's index within its child job. */
  child_index: number | null;
  seed: number;
  subseed: number;
  infotext: string;
}

/**
 * The parent's result: grids first, then every child's images in child order, as A1111's script responses are, then
 * the animations.
 */
export interface FlowJobResult {
  outputs: FlowOutputRecord[];
  grids: number;
  worker: string;
  attempt: number;
}

export function flowGridKey(tenant: string, flowId: string, n: number): string {
  return `outputs/${tenant}/${flowId}/grid-${n}.png`;
}

export function flowAnimationKey(tenant: string, flowId: string, n: number, format: AnimationFormat): string {
  return `outputs/${tenant}/${flowId}/animation-${n}.${format}`;
}

const ANIMATION_TYPES: Record<AnimationFormat, string> = { webp: 'image/webp', gif: 'image/gif' };

export function animationContentType(format: AnimationFormat): string {
  return ANIMATION_TYPES[format];
}

export function flowOutputContentType(o: Pick<FlowOutputRecord, 'content_type'>): string {
  return o.content_type ?? 'image/png';
}

/** The file name an output of the parent is served under on folder storage: `/v1/flows/:id/outputs/<name>`. */
export function flowOutputFileName(o: Pick<FlowOutputRecord, 'index' | 'content_type'>): string {
  const ext = Object.entries(ANIMATION_TYPES).find(([, t]) => t === o.content_type)?.[0] ?? 'png';
  return `${o.index}.${ext}`;
}

/** The parent: a few attempts for composing (a lost worker, storage away), and its record kept as long as jobs'. */
export function flowJobOptions(cfg: SharedConfig): DefaultJobOptions {
  return generateJobOptions(cfg);
}

/**
 * Composing is light next to a render, so each worker process takes a few parents at once; the lock and stalled
 * settings are the generation worker's, so a parent whose worker died is redone as a child would be.
 */
export function flowWorkerOptions(cfg: JobRunnerConfig, connection: ConnectionOptions): WorkerOptions {
  return { ...generateWorkerOptions(cfg, connection), concurrency: 4 };
}

export interface FlowEventTarget {
  id: string;
  tenant: string;
  webhook: FlowWebhookSpec | null;
}

/**
 * A flow's webhook for an event of its log, typed `flow.<event>`. Terminal and queued events have one message id
 * per flow, so queueing one again (a rerun after a crash, the API and a worker both ending it) sends it once.
 */
export async function enqueueFlowWebhook(
  ctx: EventContext, flow: FlowEventTarget, event: { id: string; type: FlowWebhookEvent; at: string; data: Record<string, unknown> },
): Promise<void> {
  if (!flow.webhook?.events.includes(event.type)) return;
  const once = event.type !== 'progress';
  const messageId = once ? `msg_${flow.id}_${event.type}` : `msg_${flow.id}_${event.type}_${event.id.replace('-', '_')}`;
  const payload: WebhookJobData = {
    jobId: flow.id,
    tenant: flow.tenant,
    url: flow.webhook.url,
    messageId,
    event: event.type,
    payload: { type: `flow.${event.type}`, timestamp: event.at, data: { flow_id: flow.id, ...event.data } },
  };
  await ctx.webhooks.add(event.type, payload, { jobId: messageId });
}

/** Public state of a flow from its parent's BullMQ state and its terminal record. */
export function flowState(bullState: string, terminal: 'completed' | 'failed' | 'cancelled' | null, anyChildStarted: boolean): JobState {
  if (terminal) return terminal;
  if (bullState === 'active') return 'running';
  if (bullState === 'completed') return 'completed';
  if (bullState === 'failed') return 'failed';
  return anyChildStarted ? 'running' : 'queued';
}

export interface FlowQueues {
  flows: Queue;
  producer: FlowProducer;
  close(): Promise<void>;
}

/** The parents' queue and the producer that adds a parent and its children in one transaction. */
export function openFlowQueues(cfg: SharedConfig, connection: ConnectionOptions): FlowQueues {
  const flows = new Queue(FLOWS_QUEUE, { connection, prefix: cfg.queuePrefix, defaultJobOptions: flowJobOptions(cfg) });
  const producer = new FlowProducer({ connection, prefix: cfg.queuePrefix });
  return {
    flows,
    producer,
    async close() {
      await Promise.all([flows.close(), producer.close()]);
    },
  };
}

export const FlowOutputView = OutputView.extend({
  kind: z.enum(FLOW_OUTPUT_KINDS),
  content_type: z.string().describe('image/png, or image/webp / image/gif for an animation'),
  child: z.number().int().nullable().describe('the child an image came from; null for a grid or an animation'),
  job_id: z.string().nullable().describe('the child job holding the image (GET /v1/jobs/{id}); null for a grid or an animation'),
});

export const FlowView = z.object({
  id: z.string().describe('ULID'),
  state: z.enum(JOB_STATES),
  created_at: z.string(),
  finished_at: z.string().nullable(),
  progress: z.object({
    completed: z.number().int().describe('children completed'),
    total: z.number().int(),
    fraction: z.number().describe('0..1 over every child\'s sampler steps'),
  }),
  children: z.array(JobView.extend({ index: z.number().int() })).describe('each child job as GET /v1/jobs/{id} shows it'),
  outputs: z.array(FlowOutputView)
    .describe('completed: the grids first, then every child\'s images, then the animations; before that, the images of the children done so far'),
  compose: GridCompose.nullable(),
  script: z.object({
    name: z.string(),
    cells: z.array(z.string()).describe('each child\'s label in the script\'s terms'),
    grids: z.array(z.object({
      cells: z.array(z.number().int()).describe('indices into `cells` (and `children`), left to right, top to bottom'),
      rows: z.number().int(),
    })).describe('the grids drawn straight from cells (an X/Y/Z plot\'s X/Y grid per Z value), so a client can lay the cells out as they complete'),
    warnings: z.array(z.string()),
  }).nullable(),
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional(), child: z.number().int().optional() }).nullable(),
  webhook: FlowWebhookSpec.nullable(),
});
export type FlowView = z.infer<typeof FlowView>;
