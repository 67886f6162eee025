import { Worker, type ResourceLimits } from 'node:worker_threads';

/**
 * A worker_threads thread running a TypeScript module. Node 20 does not run `--import` preloads (tsx's loader)
 * in worker threads, so the thread registers the TypeScript loader itself before importing the entry. The
 * services run their engine in such a thread: onnxruntime's `run()` blocks the thread that calls it.
 */
export function startTsThread(entry: URL, workerData: unknown, opts: { resourceLimits?: ResourceLimits } = {}): Worker {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`
    + '.catch((e) => { console.error(e); process.exit(1); });';
  return new Worker(bootstrap, { eval: true, workerData, ...opts });
}
