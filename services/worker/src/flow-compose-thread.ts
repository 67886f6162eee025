/** The compose thread (flow-compose-host.ts): a flow's grids and animations are decoded, laid out and encoded here. */
import { parentPort } from 'node:worker_threads';
import { FarmError } from '@darkroom/farm/errors.js';
import { threadFailure } from '@darkroom/core/errors.js';
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
      // Core's and the farm's typed refusals keep their codes (a frame of another size is ANIMATION_INVALID).
      const { code, message } = e instanceof FarmError ? e : threadFailure(e, 'COMPOSE_FAILED');
      return { id: m.id, error: { code, message } };
    }
  })().then((reply) => port.postMessage(reply));
});
