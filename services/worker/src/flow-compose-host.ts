import type { Worker } from 'node:worker_threads';
import { startTsThread } from '@darkroom/farm';
import type { AnimationRequest, ComposedGrid, ComposeRequest } from './flow-compose.js';
import type { ComposeMessage } from './flow-compose-thread.js';

export type ComposeReply =
  | { readonly id: number; readonly grids: ComposedGrid[] }
  | { readonly id: number; readonly animation: Uint8Array }
  | { readonly id: number; readonly error: { readonly code: string; readonly message: string } };

/** A composition that failed: its code (a core DarkroomError's, or COMPOSE_FAILED) and message. */
export class ComposeFailed extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'ComposeFailed';
  }
}

/**
 * One compose thread per worker process, started on first use: composing runs there, off the event loop that
 * renews the render's and the flows' locks. A thread that dies fails what it had in hand (the parent is retried)
 * and the next composition starts a new one.
 */
export class ComposeHost {
  private thread: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (r: ComposeReply) => void>();

  private start(): Worker {
    if (this.thread) return this.thread;
    const w = startTsThread(new URL('./flow-compose-thread.ts', import.meta.url), null);
    w.unref();
    w.on('message', (r: ComposeReply) => {
      this.pending.get(r.id)?.(r);
      this.pending.delete(r.id);
    });
    const lost = (why: string): void => {
      if (this.thread === w) this.thread = null;
      for (const [id, resolve] of this.pending) resolve({ id, error: { code: 'COMPOSE_FAILED', message: `the compose thread stopped (${why})` } });
      this.pending.clear();
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => lost(`exit code ${code}`));
    this.thread = w;
    return w;
  }

  private async call(message: ComposeMessage): Promise<ComposeReply> {
    const reply = await new Promise<ComposeReply>((resolve) => {
      this.pending.set(message.id, resolve);
      this.start().postMessage(message);
    });
    if ('error' in reply) throw new ComposeFailed(reply.error.code, reply.error.message);
    return reply;
  }

  async compose(request: ComposeRequest): Promise<ComposedGrid[]> {
    const reply = await this.call({ id: this.nextId++, request });
    if (!('grids' in reply)) throw new ComposeFailed('COMPOSE_FAILED', 'the compose thread answered a grid request with something else');
    return reply.grids;
  }

  /** An animated WebP or GIF of the frames. */
  async animate(animation: AnimationRequest): Promise<Uint8Array> {
    const reply = await this.call({ id: this.nextId++, animation });
    if (!('animation' in reply)) throw new ComposeFailed('COMPOSE_FAILED', 'the compose thread answered an animation request with something else');
    return reply.animation;
  }

  async close(): Promise<void> {
    const t = this.thread;
    this.thread = null;
    await t?.terminate();
  }
}
