import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

const GiB = 1024 ** 3;

/** A limit file's number, or null where there is none ("max", absent, or a no-limit sentinel of cgroup v1). */
function cgroupLimit(path: string): number | null {
  try {
    const raw = readFileSync(path, 'utf8').trim();
    const n = Number(raw);
    // cgroup v1 reports "no limit" as a page-rounded 2^63
    return Number.isFinite(n) && n > 0 && n < 2 ** 60 ? n : null;
  } catch {
    return null;
  }
}

/**
 * Memory this process may use: the machine's, or its container's limit when that is lower (os.totalmem() reports
 * the host inside a container, and the kernel's OOM killer works by the cgroup's limit).
 */
export function machineMemoryBytes(): number {
  const limits = [totalmem(), cgroupLimit('/sys/fs/cgroup/memory.max'), cgroupLimit('/sys/fs/cgroup/memory/memory.limit_in_bytes')];
  return Math.min(...limits.filter((n): n is number => n !== null));
}

/** WORKER_MEMORY_BUDGET's default: the machine's memory less a tenth (at least 1 GiB) for the system and Redis clients. */
export function defaultMemoryBudget(machineBytes: number): number {
  return Math.max(0, machineBytes - Math.max(GiB, machineBytes / 10));
}

/** The budget a worker advertises and keeps to: the configured one, else the machine's default. */
export function workerMemoryBudget(configured: number | null, machineBytes: number = machineMemoryBytes()): number {
  return configured ?? Math.floor(defaultMemoryBudget(machineBytes));
}
