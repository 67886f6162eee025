/**
 * Memory figures and a guard for benches that hold several GB: the host's available memory, the process's peak
 * resident set size (the kernel's high-water mark, reset per measurement), a sampler of our own heap and buffers,
 * and a watchdog that ends the process before it pushes a shared host into swap or the OOM killer.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';

export const GiB = 2 ** 30;

function procField(file: string, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Memory a new allocation can get without swapping: MemAvailable on Linux (page cache counts as free). */
export function availableBytes(): number {
  return procField('/proc/meminfo', 'MemAvailable') ?? os.freemem();
}

/**
 * Starts a new peak-RSS measurement. Linux resets the high-water mark to the current RSS when 5 is written to
 * clear_refs; where that is not possible the peak is the process's lifetime peak (the caller is told).
 */
export function resetPeakRss(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

/** The kernel's peak resident set size since the last reset (VmHWM), or the current RSS where there is none. */
export function peakRssBytes(): number {
  return procField('/proc/self/status', 'VmHWM') ?? process.memoryUsage().rss;
}

/**
 * Peaks of what our side holds: the V8 heap and the ArrayBuffers outside it (weights, tensors). onnxruntime's
 * create() and run() block the main thread, so samples are taken between them (call `sample()` at phase
 * boundaries) and on a timer while the thread is free.
 */
export class HeapPeaks {
  heapUsed = 0;
  arrayBuffers = 0;
  private timer: NodeJS.Timeout | undefined;

  sample(): void {
    const m = process.memoryUsage();
    this.heapUsed = Math.max(this.heapUsed, m.heapUsed);
    this.arrayBuffers = Math.max(this.arrayBuffers, m.arrayBuffers);
  }

  start(intervalMs = 200): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    return this;
  }

  stop(): void {
    this.sample();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/*
 * The watchdog polls from a worker thread because the main thread sits inside onnxruntime's synchronous native
 * calls for tens of seconds. When the host's available memory falls below the floor it writes why to stderr and
 * sends this process SIGTERM (no handler is installed for it, so the process ends at once, native code included).
 */
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { readFileSync, writeSync } = require('node:fs');
const available = () => {
  const m = /^MemAvailable:\\s+(\\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) * 1024 : Infinity;
};
setInterval(() => {
  const a = available();
  if (a < workerData.floorBytes) {
    writeSync(2, '\\n' + workerData.label + ': the host has ' + (a / 2 ** 30).toFixed(2) + ' GiB available, below the ' +
      (workerData.floorBytes / 2 ** 30).toFixed(2) + ' GiB floor: stopping now rather than pushing the machine into the OOM killer\\n');
    process.kill(workerData.pid, 'SIGTERM');
  }
}, workerData.intervalMs);
`;

export class MemoryWatchdog {
  private readonly worker: Worker | undefined;

  /** Does nothing where /proc/meminfo is missing (not Linux): the up-front check is all there is then. */
  constructor(label: string, floorBytes: number, intervalMs = 250) {
    if (procField('/proc/meminfo', 'MemAvailable') === undefined) return;
    this.worker = new Worker(WATCHDOG_SOURCE, { eval: true, workerData: { label, floorBytes, intervalMs, pid: process.pid } });
    // The watchdog must never be what keeps the bench alive.
    this.worker.unref();
  }

  async stop(): Promise<void> {
    await this.worker?.terminate();
  }
}
