/**
 * A job's `queued` webhook is queued after the job's add, in a Redis call of its own; when that call fails the
 * submitter is answered 503 and retries with its Idempotency-Key. The replay queues the webhook again from the
 * job's event log: on a real Redis and BullMQ queue, a message that was lost comes back with the same id and
 * payload, and one still waiting or already delivered is not queued or delivered twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Queue, Worker } from 'bullmq';
import {
  addWithQueuedEvent, appendJobEvent, farmKeys, firstQueuedEvent, requeueQueuedWebhook, type EventContext, type EventJob, type WebhookJobData,
} from '../src/index.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a replay queues a lost `queued` webhook again, once, and never one already delivered', async () => {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = `dr-unit-queued-hook-${process.pid}-${Date.now().toString(36)}`;
  const keys = farmKeys(prefix);
  const webhooks = new Queue('webhooks', { connection: redis, prefix });
  const ctx: EventContext = { redis, keys, webhooks, retentionS: 60 };
  const job: EventJob = { id: 'job-1', tenant: 't1', webhook: { url: 'https://example.com/hook', events: ['queued', 'completed'] } };
  const messageId = `msg_${job.id}_queued`;
  const delivered: WebhookJobData[] = [];
  const workerConnection = redis.duplicate({ maxRetriesPerRequest: null });
  let worker: Worker | undefined;
  try {
    await addWithQueuedEvent(ctx, job, { kind: 'txt2img' }, async () => 'added', () => true);
    const first = await webhooks.getJob(messageId);
    assert.ok(first, 'the submission queued the webhook');
    const original = first.data as WebhookJobData;
    assert.equal(original.payload.type, 'job.queued');

    // The enqueue that failed: the job and its `queued` event exist, its message does not.
    await first.remove();
    assert.equal(await webhooks.getJob(messageId), undefined);
    await requeueQueuedWebhook(ctx, job);
    const again = await webhooks.getJob(messageId);
    assert.ok(again, 'the replay queued it again');
    assert.deepEqual(again.data, original, 'with the payload (and timestamp) of the event the job was queued with');

    // Replayed while it waits: still one message.
    await requeueQueuedWebhook(ctx, job);
    assert.equal(await webhooks.count(), 1);

    worker = new Worker('webhooks', async (m) => {
      delivered.push(m.data as WebhookJobData);
    }, { connection: workerConnection, prefix });
    await until('the delivery', async () => (await webhooks.getJobCounts('completed')).completed === 1);

    // Replayed after delivery: the kept message holds its id, so nothing is sent twice.
    await requeueQueuedWebhook(ctx, job);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(delivered.length, 1);
    const counts = await webhooks.getJobCounts('waiting', 'active', 'completed', 'delayed');
    assert.deepEqual(counts, { waiting: 0, active: 0, completed: 1, delayed: 0 });
  } finally {
    await worker?.close();
    await webhooks.obliterate({ force: true });
    await webhooks.close();
    await redis.del(keys.events(job.id));
    // A connection handed to BullMQ stays open after its worker closes.
    workerConnection.disconnect();
    redis.disconnect();
  }
});

test('nothing is queued for a job that did not ask for `queued`, or whose log no longer starts with it', async () => {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const prefix = `dr-unit-queued-hook-none-${process.pid}-${Date.now().toString(36)}`;
  const keys = farmKeys(prefix);
  const webhooks = new Queue('webhooks', { connection: redis, prefix });
  const ctx: EventContext = { redis, keys, webhooks, retentionS: 60 };
  const quiet: EventJob = { id: 'job-quiet', tenant: 't1', webhook: { url: 'https://example.com/hook', events: ['completed'] } };
  const trimmed: EventJob = { id: 'job-trimmed', tenant: 't1', webhook: { url: 'https://example.com/hook', events: ['queued'] } };
  try {
    await addWithQueuedEvent(ctx, quiet, {}, async () => 'added', () => true);
    await requeueQueuedWebhook(ctx, quiet);
    assert.equal(await webhooks.count(), 0, 'a job without `queued` in its webhook events gets no message');
    assert.equal((await firstQueuedEvent(redis, keys, quiet.id))?.type, 'queued', 'though its log starts with the event');

    // A log trimmed past its start (a very long job's) has no `queued` event to send.
    await appendJobEvent(ctx, trimmed, 'started', {});
    assert.equal(await firstQueuedEvent(redis, keys, trimmed.id), null);
    await requeueQueuedWebhook(ctx, trimmed);
    assert.equal(await webhooks.count(), 0);
  } finally {
    await webhooks.obliterate({ force: true });
    await webhooks.close();
    await redis.del(keys.events(quiet.id), keys.events(trimmed.id));
    redis.disconnect();
  }
});
