import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './farm.js';

/**
 * A Redis of the test's own (redis-server on a free port, AOF on so a restart keeps every job), for tests that
 * stop and restart Redis: the shared one on 6379 serves everybody else's tests. redis-server comes from the
 * system, as scripts/ensure-redis.sh installs it.
 */
export interface PrivateRedis {
  url: string;
  port: number;
  /** A client of the test's own (reconnects by itself across restarts). */
  client: Redis;
  /** SIGTERM: Redis writes its AOF and exits; clients see the connection close. */
  stop(): Promise<void>;
  /** SIGKILL: Redis dies at once, as in a host crash; only what the AOF already holds survives `start()`. */
  crash(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: Redis hangs with its connections open, as a stuck or partitioned server does. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'darkroom-redis-'));
  let child: ChildProcess | null = null;
  const ping = async (): Promise<boolean> => {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } finally {
      probe.disconnect();
    }
  };
  const start = async (): Promise<void> => {
    child = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir,
    ], { stdio: 'ignore' });
    await waitFor(`redis-server on port ${port}`, ping, 10_000, 50);
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    await once(c, 'exit');
  };
  const crash = async (): Promise<void> => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGKILL');
    await once(c, 'exit');
  };
  await start();
  const client = new Redis({ port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    client,
    stop,
    crash,
    start,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async close() {
      client.disconnect();
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
