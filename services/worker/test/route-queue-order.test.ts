import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { returnToQueue } from '../src/route.js';

/**
 * Where a job handed back by warm routing lands in a real BullMQ queue on a real Redis. Workers fetch by hand
 * (getNextJob) so that the order of claims is the test's, not the scheduler's.
 */
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `dr-route-order-${process.pid}-${Date.now().toString(36)}`;
let redis: Redis;
let queue: Queue | undefined;
let fetcher: Worker | undefined;
let run = 0;

before(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
});

after(async () => {
  await fetcher?.close();
  await queue?.close();
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

/** A fresh queue holding `names` in submission order (each job's data names the checkpoint it wants). */
async function queueOf(names: readonly string[]): Promise<Queue> {
  await fetcher?.close();
  await queue?.close();
  queue = new Queue(`generate-${run++}`, { connection: redis, prefix });
  fetcher = new Worker(queue.name, null, { connection: redis, prefix, autorun: false });
  for (const name of names) await queue.add(name, { model: name });
  return queue;
}

const claim = async (token: string): Promise<Job | undefined> => (await fetcher!.getNextJob(token, { block: false })) as Job | undefined;

test('a job handed back to an idle warm worker is the next job claimed, with no attempt used', async () => {
  await queueOf(['x', 'y']);
  const x = await claim('cold');
  assert.equal(x?.name, 'x');
  await returnToQueue(redis, x!, 'cold', 'idle', 0, Date.now());
  const next = await claim('warm');
  assert.equal(next?.name, 'x', 'the handed-back job is at the front, not behind y');
  assert.equal(next?.attemptsMade, 0);
  assert.equal(await next?.getState(), 'active');
});

test('a job handed back for busy warm workers is out of sight: the claimer gets the next job', async () => {
  await queueOf(['x', 'y']);
  const x = await claim('cold');
  await returnToQueue(redis, x!, 'cold', 'busy', 10_000, Date.now());
  assert.equal(await x!.getState(), 'delayed');
  assert.equal((await claim('cold'))?.name, 'y');
});

test('two warm workers that each claimed the other\'s job take their own next, whichever hands back first asks first', async () => {
  // The race seen on a loaded host: worker A holds a, worker B holds b, both idle, and each claims the other's
  // job. Both hand back to the other; then the one whose pause ends first (the first to hand back) asks first.
  for (const firstBack of ['A', 'B'] as const) {
    await queueOf(['a', 'b']);
    const byB = await claim('B');
    const byA = await claim('A');
    assert.deepEqual([byB?.name, byA?.name], ['a', 'b']);
    const order = firstBack === 'A' ? (['A', 'B'] as const) : (['B', 'A'] as const);
    const held = { A: byA!, B: byB! };
    for (const w of order) await returnToQueue(redis, held[w], w, 'idle', 0, Date.now());
    const taken: Record<string, string> = {};
    let handBacks = 0;
    // Each round, the workers ask in the order they handed back; a worker takes its own job, hands back another.
    for (let round = 0; round < 5 && Object.keys(taken).length < 2; round++) {
      for (const w of order) {
        if (taken[w]) continue;
        const job = await claim(w);
        if (!job) continue;
        if (job.name === w.toLowerCase()) taken[w] = job.name;
        else {
          handBacks++;
          await returnToQueue(redis, job, w, 'idle', 0, Date.now());
        }
      }
    }
    assert.deepEqual(taken, { A: 'a', B: 'b' }, `hand-backs before both were taken: ${handBacks}`);
    assert.ok(handBacks <= 1, `${handBacks} more hand-backs (first back: ${firstBack})`);
  }
});

test('a prioritized job handed to an idle worker wakes its blocked fetch at once', async () => {
  // Every farm job has a priority (fair share). A worker with nothing to do sits in a blocking fetch for up to
  // its drainDelay; the hand-back has to wake it, as a new job would, or the job waits out that delay.
  const DRAIN_DELAY_S = 10;
  const q = new Queue(`generate-${run++}`, { connection: redis, prefix });
  const cold = new Worker(q.name, null, { connection: redis, prefix, autorun: false });
  await q.add('x', { model: 'x' }, { priority: 3 });
  const x = (await cold.getNextJob('cold', { block: false })) as Job | undefined;
  assert.equal(x?.name, 'x');
  let claimedAt = 0;
  let drained!: () => void;
  const idle = new Promise<void>((r) => {
    drained = r;
  });
  const warm = new Worker(
    q.name,
    async () => {
      claimedAt = Date.now();
    },
    { connection: { host: new URL(REDIS_URL).hostname, port: Number(new URL(REDIS_URL).port || 6379) }, prefix, drainDelay: DRAIN_DELAY_S },
  );
  warm.on('drained', () => drained());
  try {
    await idle;
    // Past the marker left by the submission: the warm worker is now blocked on an empty marker set.
    await new Promise((r) => setTimeout(r, 500));
    const handedAt = Date.now();
    await returnToQueue(redis, x!, 'cold', 'idle', 0, handedAt);
    const deadline = handedAt + (DRAIN_DELAY_S * 1000) / 2;
    while (claimedAt === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(claimedAt > 0, `the idle worker did not claim the handed-back job within ${deadline - handedAt} ms (its block lasts ${DRAIN_DELAY_S} s)`);
    assert.ok(claimedAt - handedAt < 2000, `claimed ${claimedAt - handedAt} ms after the hand-back`);
  } finally {
    await warm.close();
    await cold.close();
    await q.close();
  }
});
