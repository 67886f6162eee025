import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer as createNetServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export async function freePort(): Promise<number> {
  const srv = createNetServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

export interface ServiceProcess {
  name: string;
  child: ChildProcess;
  port: number;
  log: string[];
}

function startService(name: string, script: string, env: Record<string, string>, port: number): ServiceProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, script)], {
    // TEST_SERVICE_LOG_LEVEL=debug to see what the services did in a failing test (warnings only by default).
    cwd: ROOT, env: { ...process.env, LOG_LEVEL: process.env.TEST_SERVICE_LOG_LEVEL ?? 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  child.stdout!.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => log.push(d.toString()));
  return { name, child, port, log };
}

/** The last `chars` characters a service wrote (at the harness's LOG_LEVEL), for a failure's message. */
function logTail(p: ServiceProcess, chars: number): string {
  return p.log.join('').slice(-chars);
}

/** Each service's log tail under its name and exit status. */
export function serviceLogTails(services: readonly ServiceProcess[], chars = Number(process.env.TEST_SERVICE_LOG_CHARS ?? 3000)): string {
  return services.map((p) => `--- ${p.name} (exit ${p.child.exitCode ?? p.child.signalCode ?? 'running'}) ---\n${logTail(p, chars)}`).join('\n');
}

async function healthy(p: ServiceProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited: ${logTail(p, 2000)}`);
    const ok = await fetch(`http://127.0.0.1:${p.port}/healthz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${p.name} did not become healthy: ${logTail(p, 2000)}`);
}

export interface Farm {
  url: string;
  prefix: string;
  env: Record<string, string>;
  api: ServiceProcess;
  workers: ServiceProcess[];
  trainers: ServiceProcess[];
  redis: Redis;
  /** A worker process; `env` adds to (or overrides) the farm's environment for this worker alone. */
  startWorker(name?: string, env?: Record<string, string>): Promise<ServiceProcess>;
  /** A trainer process (services/trainer) against the same Redis and storage. */
  startTrainer(name?: string): Promise<ServiceProcess>;
  request(method: string, path: string, opts?: { key?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; json: unknown; headers: Headers }>;
  stop(): Promise<void>;
}

/**
 * The API and `workers` worker processes, as operators run them, against the real Redis with a prefix of
 * their own (so runs never collide) and the given storage.
 */
export async function startFarm(opts: { storageUrl?: string; workers: number; env?: Record<string, string> }): Promise<Farm> {
  const prefix = `dr-test-${process.pid}-${Date.now().toString(36)}`;
  const folder = opts.storageUrl ? null : await mkdtemp(join(tmpdir(), 'darkroom-farm-'));
  const apiPort = await freePort();
  const env: Record<string, string> = {
    REDIS_URL, QUEUE_PREFIX: prefix, PORT: String(apiPort), HOST: '127.0.0.1',
    STORAGE_URL: opts.storageUrl ?? `file://${folder}`, CACHE_DIR: join(tmpdir(), `${prefix}-cache`),
    MODELS_DIR: join(tmpdir(), `${prefix}-models`),
    ...opts.env,
  };
  const api = startService('api', 'services/api/src/main.ts', env, apiPort);
  const workers: ServiceProcess[] = [];
  const trainers: ServiceProcess[] = [];
  const redis = new Redis(REDIS_URL);
  const farm: Farm = {
    url: `http://127.0.0.1:${apiPort}`,
    prefix, env, api, workers, trainers, redis,
    async startWorker(name = `w${workers.length + 1}`, own = {}) {
      const port = await freePort();
      const w = startService(name, 'services/worker/src/main.ts', { ...env, ...own, WORKER_PORT: String(port), WORKER_HOST: '127.0.0.1', WORKER_NAME: name }, port);
      workers.push(w);
      await healthy(w);
      return w;
    },
    async startTrainer(name = `t${trainers.length + 1}`) {
      const port = await freePort();
      const t = startService(name, 'services/trainer/src/main.ts', { ...env, WORKER_PORT: String(port), WORKER_HOST: '127.0.0.1', WORKER_NAME: name }, port);
      trainers.push(t);
      await healthy(t);
      return t;
    },
    async request(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.key) headers.authorization = `Bearer ${o.key}`;
      if (o.body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
      const body = o.body === undefined ? undefined
        : typeof o.body === 'string' || o.body instanceof Uint8Array ? o.body : JSON.stringify(o.body);
      const res = await fetch(`${farm.url}${path}`, { method, headers, body }).catch((e: unknown) => {
        // A call that never answers says little by itself: the services' own words go with it.
        throw new Error(`${method} ${path} failed: ${String(e)}\n${serviceLogTails([api, ...workers, ...trainers])}`, { cause: e });
      });
      const text = await res.text();
      let json: unknown = text;
      try {
        json = JSON.parse(text);
      } catch {
        /* not JSON: keep the text, tests assert on it */
      }
      return { status: res.status, json, headers: res.headers };
    },
    async stop() {
      const all = [api, ...workers, ...trainers].filter((p) => p.child.exitCode === null && p.child.signalCode === null);
      for (const p of all) p.child.kill('SIGTERM');
      await Promise.all(all.map(async (p) => {
        const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
        if (p.child.exitCode === null && p.child.signalCode === null) await once(p.child, 'exit');
        clearTimeout(timer);
      }));
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      await redis.quit();
      if (folder) await rm(folder, { recursive: true, force: true });
      await rm(env.CACHE_DIR!, { recursive: true, force: true });
    },
  };
  await healthy(api);
  for (let i = 0; i < opts.workers; i++) await farm.startWorker();
  return farm;
}

export interface ReceivedHook {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A local webhook receiver that can be stopped and started again on the same port. */
export class HookReceiver {
  readonly received: ReceivedHook[] = [];
  private server: import('node:http').Server | null = null;
  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async start(): Promise<void> {
    const { createServer } = await import('node:http');
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
    this.server = null;
  }
}

/** Reads a job's SSE stream until it ends (terminal event), returning the events. */
export async function readEvents(url: string, headers: Record<string, string> = {}): Promise<{ id: string; event: string; data: Record<string, unknown> }[]> {
  const res = await fetch(url, { headers });
  if (!res.ok) throw new Error(`events: ${res.status}`);
  const text = await res.text();
  const out: { id: string; event: string; data: Record<string, unknown> }[] = [];
  for (const block of text.split('\n\n')) {
    const id = /^id: (.*)$/m.exec(block)?.[1];
    const event = /^event: (.*)$/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (id && event && data) out.push({ id, event, data: JSON.parse(data) as Record<string, unknown> });
  }
  return out;
}
