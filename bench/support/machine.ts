/** What a bench result depends on besides the code: the host, the runtimes, the execution provider. */
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Provider } from '../../packages/core/src/runtime/session.js';

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly loadAverage1m: number;
  readonly platform: string;
  readonly node: string;
  readonly onnxruntime: string;
  readonly provider: Provider;
}

function packageVersion(name: string): string {
  try {
    const pkg = createRequire(import.meta.url)(`${name}/package.json`) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machineInfo(provider: Provider): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    // Shared build hosts run other work beside the bench: the load says how much to trust the figures.
    loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
    platform: `${os.platform()} ${os.arch()} ${os.release()}`,
    node: process.version,
    onnxruntime: packageVersion('onnxruntime-node'),
    provider,
  };
}
