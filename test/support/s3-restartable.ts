import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import { freePort } from './farm.js';

export interface RestartableS3 {
  storageUrl: string;
  /** AWS_* variables s3rver accepts. */
  env: Record<string, string>;
  /** Stops answering: the listener closes and open keep-alive connections are cut, so clients get ECONNREFUSED. */
  stop(): Promise<void>;
  /** Serves the same bucket and objects again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** s3rver on a fixed port over a folder that outlives restarts, for storage outages. */
export async function startRestartableS3(bucket = 'darkroom'): Promise<RestartableS3> {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-s3-'));
  const port = await freePort();
  let server: S3rver | null = null;
  const start = async (): Promise<void> => {
    server = new S3rver({ address: '127.0.0.1', port, silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
    await server.run();
  };
  const stop = async (): Promise<void> => {
    const s = server;
    server = null;
    if (!s) return;
    const http = (s as unknown as { httpServer?: Server }).httpServer;
    const closed = s.close();
    http?.closeAllConnections();
    await closed;
  };
  await start();
  const endpoint = `http://127.0.0.1:${port}`;
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
  Object.assign(process.env, env);
  return {
    storageUrl: `s3://${bucket}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&forcePathStyle=true`,
    env,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
