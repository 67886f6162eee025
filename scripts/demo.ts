/**
 * `npm run demo`: the quick start. Makes sure Redis runs, starts the API and one worker on the built-in model
 * with folder storage, submits a txt2img over HTTP, follows its progress, prints where the PNG is, and shuts
 * everything down again.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

async function freePort(preferred: number): Promise<number> {
  const tryPort = (port: number) => new Promise<number | null>((done) => {
    const srv = createServer();
    srv.once('error', () => done(null));
    srv.listen(port, '127.0.0.1', () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => done(p));
    });
  });
  return (await tryPort(preferred)) ?? (await tryPort(0))!;
}

function start(name: string, script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(ROOT, script)], {
    cwd: ROOT, env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...env }, stdio: ['ignore', 'inherit', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${name} exited unexpectedly (${signal ?? code})`);
      process.exitCode = 1;
    }
  });
  return child;
}

async function healthy(name: string, url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} failed to start`);
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} did not answer ${url} within 2 minutes`);
}

let stopping = false;
const children: ChildProcess[] = [];

async function stopAll(): Promise<void> {
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(children.filter((c) => c.exitCode === null).map((c) => once(c, 'exit')));
}

async function main(): Promise<void> {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (!process.env.REDIS_URL) {
    const r = spawnSync('bash', [resolve(ROOT, 'scripts/ensure-redis.sh')], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('Redis is needed: see the message above, or set REDIS_URL to one you have');
  }
  const apiPort = await freePort(Number(process.env.PORT ?? 7860));
  const workerPort = await freePort(Number(process.env.WORKER_PORT ?? 9464));
  const storageDir = resolve(ROOT, '.darkroom/storage');
  const env = {
    REDIS_URL: redisUrl, PORT: String(apiPort), HOST: '127.0.0.1', WORKER_PORT: String(workerPort), WORKER_HOST: '127.0.0.1',
    STORAGE_URL: process.env.STORAGE_URL ?? pathToFileURL(storageDir).href, QUEUE_PREFIX: process.env.QUEUE_PREFIX ?? 'darkroom-demo',
  };
  const api = `http://127.0.0.1:${apiPort}`;
  console.log(`Starting the API on ${api} and a worker (metrics on :${workerPort}) ...`);
  children.push(start('api', 'services/api/src/main.ts', env), start('worker', 'services/worker/src/main.ts', env));
  await healthy('api', `${api}/healthz`, children[0]!);
  await healthy('worker', `http://127.0.0.1:${workerPort}/healthz`, children[1]!);

  // The built-in model draws the scenes it was trained on: shapes in colours and places, on one or two colours.
  const request = { prompt: 'a large yellow star in the centre, blue background', steps: 20, sampler_name: 'DPM++ 2M', cfg_scale: 5, width: 128, height: 128, seed: 42 };
  console.log(`POST ${api}/v1/txt2img ${JSON.stringify(request)}`);
  const res = await fetch(`${api}/v1/txt2img`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) });
  if (res.status !== 202) throw new Error(`submit failed: ${res.status} ${await res.text()}`);
  const { id, events_url: eventsUrl } = (await res.json()) as { id: string; events_url: string };
  console.log(`job ${id} queued; following ${eventsUrl}`);

  // Server-Sent Events until the job ends (the first run also compiles the model's graphs, which takes a moment).
  const stream = await fetch(eventsUrl);
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of stream.body!) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let at: number;
    while ((at = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? '{}') as { step?: number; steps?: number; error?: { message: string } };
      if (event === 'progress') process.stdout.write(`\r  step ${data.step}/${data.steps}`);
      else if (event) console.log(`${event === 'completed' ? '\n' : ''}  ${event}`);
      if (event === 'failed') throw new Error(`job failed: ${data.error?.message}`);
    }
  }
  const job = (await (await fetch(`${api}/v1/jobs/${id}`)).json()) as { state: string; outputs: { index: number; url: string; infotext: string }[] };
  if (job.state !== 'completed') throw new Error(`job ended ${job.state}`);
  for (const o of job.outputs) {
    const where = env.STORAGE_URL.startsWith('file:') ? resolve(fileURLToPath(env.STORAGE_URL), 'outputs', 'default', id, `${o.index}.png`) : o.url;
    console.log(`\nPNG: ${where}\nURL: ${o.url} (while the API runs)\ninfotext:\n${o.infotext}\n`);
  }
}

main()
  .catch((e: unknown) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => void stopAll().then(() => console.log('API and worker stopped.')));
