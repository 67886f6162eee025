import type { WorkerAdvert } from './heartbeats.js';

/**
 * Warm-model routing, decided by the worker that claims a job (claim-time affinity on the one `generate` queue).
 *
 * Loading a checkpoint costs seconds to minutes; rendering on one already loaded costs nothing extra. Every worker
 * advertises the checkpoints its engine holds (heartbeat `models`), and sends its advert at once when it starts
 * or ends a job. A worker that claims a job naming a checkpoint it does not hold, while another live worker whose
 * memory budget holds the job does, hands the job back instead of loading it:
 *
 * - to an idle warm worker: back at the front of the queue at once, and the claimer pauses briefly so the idle
 *   worker, blocked waiting for work and woken by the queue marker the hand-back adds, is the one that takes it (the
 *   front, so that two workers that each claimed the other's job do not keep trading them; see the worker's
 *   returnToQueue);
 * - to busy warm workers only: out of every worker's sight for `retryMs`, so the claimer goes on to the next job
 *   in queue order (one it holds, or one nobody holds) and a warm worker finishing meanwhile can take this one.
 *
 * The wait is bounded: from a job's first hand-back, after `waitMs` any worker takes it. So a job is never
 * stranded by a warm worker that is busy for long, or dead with its heartbeat not yet expired. A job naming a
 * checkpoint no live worker holds is taken at once, and so is one naming the built-in model (every worker loads it in
 * well under a second; routing it would only add waits). Fair share is kept: a handed-back job keeps its
 * priority, and it is passed over for at most `waitMs`.
 */
export interface RoutingPolicy {
  /** The longest a job is handed back for a warm worker, from its first hand-back. */
  readonly waitMs: number;
  /** How long a job handed back for busy warm workers stays out of sight. */
  readonly retryMs: number;
}

export type RouteDecision =
  | { readonly action: 'take'; readonly reason: 'unrouted' | 'held-here' | 'nobody-holds-it' | 'waited-enough' }
  | { readonly action: 'hand-back'; readonly to: 'idle' | 'busy'; readonly delayMs: number; readonly workers: readonly string[] };

export interface RouteQuestion {
  /** The routing key of the job's checkpoint (checkpointIdentity), null for the built-in model or a job without one. */
  readonly key: string | null;
  /** The claiming worker's name and the keys its engine holds. */
  readonly self: string;
  readonly held: readonly string[];
  /** Live workers' adverts (the claimer's own is ignored). */
  readonly live: readonly WorkerAdvert[];
  /** Whether a worker's memory budget holds the job (admission's test). */
  readonly fits: (w: WorkerAdvert) => boolean;
  /** When the job was first handed back for routing (ms), null if never. */
  readonly firstHandBackAt: number | null;
  readonly now: number;
  readonly policy: RoutingPolicy;
}

export function routeJob(q: RouteQuestion): RouteDecision {
  if (q.key === null) return { action: 'take', reason: 'unrouted' };
  if (q.held.includes(q.key)) return { action: 'take', reason: 'held-here' };
  if (q.firstHandBackAt !== null && q.now - q.firstHandBackAt >= q.policy.waitMs) return { action: 'take', reason: 'waited-enough' };
  const key = q.key;
  const warm = q.live.filter((w) => w.name !== q.self && (w.models ?? []).includes(key) && q.fits(w));
  if (warm.length === 0) return { action: 'take', reason: 'nobody-holds-it' };
  const idle = warm.filter((w) => w.job === null);
  if (idle.length > 0) return { action: 'hand-back', to: 'idle', delayMs: 0, workers: idle.map((w) => w.name) };
  return { action: 'hand-back', to: 'busy', delayMs: q.policy.retryMs, workers: warm.map((w) => w.name) };
}

/**
 * The routing keys of what an engine holds: its loaded checkpoint paths mapped through the keys of the files this
 * worker resolved ('' is the built-in model, never routed); paths it never resolved are left out.
 */
export function heldKeys(loadedPaths: readonly string[], keyOfPath: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const p of loadedPaths) {
    const k = keyOfPath.get(p);
    if (k !== undefined && !out.includes(k)) out.push(k);
  }
  return out;
}
