import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

export interface TestS3 {
  /** STORAGE_URL for the farm. */
  storageUrl: string;
  endpoint: string;
  /** AWS_* variables s3rver accepts. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** A real S3-compatible server (s3rver) on a random port over a temp folder, with one bucket. */
export async function startS3(bucket = 'darkroom'): Promise<TestS3> {
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
  Object.assign(process.env, env);
  return {
    storageUrl: `s3://${bucket}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1&forcePathStyle=true`,
    endpoint,
    env,
    async close() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
