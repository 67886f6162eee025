/** The compose thread (flow-compose-host.ts): a flow's grids are decoded, laid out and encoded here. */
import { parentPort } from 'node:worker_threads';
import { composeFlow, type ComposeRequest } from './flow-compose.js';
import type { ComposeReply } from './flow-compose-host.js';

const port = parentPort!;
port.on('message', (m: { id: number; request: ComposeRequest }) => {
  let reply: ComposeReply;
  try {
    reply = { id: m.id, grids: composeFlow(m.request) };
  } catch (e) {
    const err = e as { name?: unknown; code?: unknown; message?: unknown };
    const code = err.name === 'DarkroomError' && typeof err.code === 'string' ? err.code : 'COMPOSE_FAILED';
    reply = { id: m.id, error: { code, message: String(err.message ?? e) } };
  }
  port.postMessage(reply);
});
