import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { readJobOutcome } from '../src/job-outcome.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

test('a job read as finished carries its outcome, however its finishing falls between reads; unknown ids are gone', async () => {
  const prefix = `dr-unit-outcome-${process.pid}-${Date.now().toString(36)}`;
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const workerConnection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue<{ n: number }, { n: number }>('outcome', { connection, prefix });
  // The worker finishes each job as soon as it takes it, while the loop below reads the job without a pause: a
  // reader that looked at the job before its state would, for some of them, see "completed" with no result.
  const worker = new Worker<{ n: number }, { n: number }>('outcome', async (job) => {
    if (job.data.n % 7 === 3) throw new Error(`refused ${job.data.n}`);
    return { n: job.data.n };
  }, { connection: workerConnection, prefix, concurrency: 1 });
  try {
    assert.deepEqual(await readJobOutcome(queue, 'no-such-job'), { state: 'gone' });
    const seen = new Set<string>();
    for (let n = 0; n < 80; n++) {
      const job = await queue.add('j', { n }, { removeOnComplete: false, removeOnFail: false });
      for (;;) {
        const outcome = await readJobOutcome<{ n: number }, { n: number }>(queue, job.id!);
        seen.add(outcome.state);
        if (outcome.state === 'completed') {
          assert.deepEqual(outcome.job.returnvalue, { n }, `job ${n} read as completed`);
          break;
        }
        if (outcome.state === 'failed') {
          assert.equal(outcome.job.failedReason, `refused ${n}`, `job ${n} read as failed`);
          assert.equal(n % 7, 3);
          break;
        }
        assert.notEqual(outcome.state, 'gone', `job ${n} went missing`);
      }
    }
    assert.ok(seen.has('completed') && seen.has('failed'), [...seen].join(', '));
  } finally {
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
    // BullMQ closes only the connections it made; these two were handed to it.
    await Promise.all([connection.quit(), workerConnection.quit()]);
  }
});
