/**
 * The thread that reads png-info requests (png-info.ts): parsing a client's PNG, its CRCs and its compressed text
 * (inflated up to the ceiling) is done here, so a stream of such requests does not hold the API's event loop.
 */
import { parentPort } from 'node:worker_threads';
import { isDarkroomError } from '@darkroom/core/errors.js';
import { pngInfo } from '@darkroom/core/formats/png-info.js';
import type { PngInfoReply, PngInfoRequest } from './png-info.js';

const port = parentPort!;
port.on('message', (m: PngInfoRequest) => {
  let reply: PngInfoReply;
  try {
    reply = { id: m.id, info: pngInfo(m.bytes) };
  } catch (e) {
    reply = isDarkroomError(e)
      ? { id: m.id, error: { code: e.code, message: e.message } }
      : { id: m.id, error: { code: 'PNG_UNREADABLE', message: e instanceof Error ? e.message : String(e) } };
  }
  port.postMessage(reply);
});
