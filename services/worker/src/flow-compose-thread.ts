/** The compose thread (flow-compose-host.ts): a flow's grids and animations are decoded, laid out and encoded here. */
import { parentPort } from 'node:worker_threads';
import { composeAnimation, composeFlow, type AnimationRequest, type ComposeRequest } from './flow-compose.js';
import type { ComposeReply } from './flow-compose-host.js';

export type ComposeMessage =
  | { readonly id: number; readonly request: ComposeRequest }
  | { readonly id: number; readonly animation: AnimationRequest };

const port = parentPort!;
port.on('message', (m: ComposeMessage) => {
  void (async (): Promise<ComposeReply> => {
    try {
      if ('animation' in m) return { id: m.id, animation: await composeAnimation(m.animation) };
      return { id: m.id, grids: composeFlow(m.request) };
    } catch (e) {
      const err = e as { name?: unknown; code?: unknown; message?: unknown };
      // Core's and the farm's typed refusals keep their codes (a frame of another size is ANIMATION_INVALID).
      const typed = (err.name === 'DarkroomError' || err.name === 'FarmError') && typeof err.code === 'string';
      return { id: m.id, error: { code: typed ? (err.code as string) : 'COMPOSE_FAILED', message: String(err.message ?? e) } };
    }
  })().then((reply) => port.postMessage(reply));
});
