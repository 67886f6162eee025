/**
 * The thread uploads are checked on: parsing a pickle or inflating a zip member is synchronous work that would
 * otherwise stall every request the API serves. One check at a time (the host sends them in turn).
 */
import { parentPort } from 'node:worker_threads';
import { checkAndDescribeAssetFile } from './asset-check.js';
import type { CheckReply, CheckRequest } from './asset-checker.js';

const port = parentPort!;
port.on('message', (m: CheckRequest) => {
  void checkAndDescribeAssetFile(m.kind, m.path, m.filename).then(
    (check) => port.postMessage({ id: m.id, ...check } satisfies CheckReply),
    (e: unknown) => port.postMessage({ id: m.id, problem: { code: 'ASSET_UNREADABLE', message: `${m.filename}: ${String((e as Error).message ?? e)}` } } satisfies CheckReply),
  );
});
port.postMessage({ type: 'ready' });
