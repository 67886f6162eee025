/**
 * onnxruntime's own optimized form of each cached graph, kept beside it. Opening a cached graph costs little
 * reading: what takes the seconds is onnxruntime optimizing the graph (constant folding, the CPU's blocked conv
 * layout) and prepacking every MatMul and Conv weight into its kernel's layout, again in every process. The first
 * session of a graph saves its optimized model with the prepacked weights (session options optimizedModelFilePath
 * and save_external_prepacked_constant_initializers); later sessions open that with optimization off and prepack
 * nothing. Runs compute the same values either way (the same kernels on the same weights).
 *
 * The optimized model holds what this onnxruntime chose for this CPU (the blocked layout's width, the packed
 * formats), so it is kept under a fingerprint of both and the optimization level; the CPU provider only (other
 * providers optimize for their device when the session opens, and prepack nothing on the host).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createSession, type EngineSession, type SessionOptions } from '../runtime/session.js';

let runtime: string | undefined;

/** onnxruntime's version, the architecture and the CPU (model and feature flags): what the saved form depends on. */
function runtimeFingerprint(): string {
  if (runtime) return runtime;
  let version = 'unknown';
  try {
    version = (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version?: string }).version ?? version;
  } catch {
    // without a version the fingerprint still separates CPUs
  }
  let flags = '';
  try {
    flags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {
    // not Linux: the model name stands alone
  }
  runtime = createHash('sha256').update(`${version}|${process.arch}|${os.cpus()[0]?.model ?? ''}|${flags}`).digest('hex').slice(0, 16);
  return runtime;
}

/** Where the optimized form of the graph at `graphPath` lives for these options. */
export function optimizedModelPath(graphPath: string, opts: SessionOptions): string {
  const level = opts.optimizationLevel ?? 'all';
  const key = createHash('sha256').update(`${runtimeFingerprint()}|${level}`).digest('hex').slice(0, 16);
  return join(dirname(graphPath), `ort-${key}`, 'model.onnx');
}

/**
 * A session over the cached graph at `graphPath`: from its saved optimized form when there is one, else opened in
 * full and the optimized form saved for next time. A saved form that fails to open is removed and made again; one
 * that cannot be saved (a full disk) leaves the session opened as before.
 */
export async function openCachedGraph(graphPath: string, opts: SessionOptions = {}): Promise<EngineSession> {
  if ((opts.provider ?? 'cpu') !== 'cpu' || opts.saveOptimizedModel !== undefined) return createSession(graphPath, opts);
  const optimized = optimizedModelPath(graphPath, opts);
  const dir = dirname(optimized);
  if (existsSync(join(dir, 'complete'))) {
    try {
      return await createSession(optimized, { ...opts, optimizationLevel: 'disabled' });
    } catch {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(tmp, { recursive: true });
  let session: EngineSession;
  try {
    session = await createSession(graphPath, { ...opts, saveOptimizedModel: join(tmp, 'model.onnx') });
  } catch {
    await rm(tmp, { recursive: true, force: true });
    return createSession(graphPath, opts);
  }
  try {
    await writeFile(join(tmp, 'complete'), '');
    await rename(tmp, dir);
  } catch {
    // another process saved the same form first (theirs is as good), or the folder cannot be written: the open
    // session is all this call needs
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return session;
}
