import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { CancelListener, farmKeys, requestStop, takeStop } from '../src/index.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

test('interrupt and skip are taken exactly once, an interrupt replaces a pending skip, and the message reaches the watcher', async () => {
  const redis = new Redis(REDIS_URL);
  const keys = farmKeys(`dr-unit-stop-${process.pid}-${Date.now().toString(36)}`);
  const listener = await CancelListener.open(new Redis(REDIS_URL), keys);
  try {
    // A skip sent before anyone listens (a worker still loading the checkpoint) waits for the render, once.
    await requestStop(redis, keys, 'job-1', 'skip');
    assert.equal(await takeStop(redis, keys, 'job-1'), 'skip');
    assert.equal(await takeStop(redis, keys, 'job-1'), null, 'a skip must not skip a second iteration');

    await requestStop(redis, keys, 'job-2', 'skip');
    await requestStop(redis, keys, 'job-2', 'interrupt');
    await requestStop(redis, keys, 'job-2', 'skip');
    assert.equal(await takeStop(redis, keys, 'job-2'), 'interrupt', 'a later skip does not undo an interrupt');

    const heard: string[] = [];
    const unwatch = listener.watch('job-3', () => heard.push('cancel'), (kind) => heard.push(kind));
    await requestStop(redis, keys, 'job-3', 'interrupt');
    await requestStop(redis, keys, 'job-4', 'skip');
    const deadline = Date.now() + 5000;
    while (heard.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(heard, ['interrupt'], 'only the watched job hears it, as a stop rather than a cancel');
    unwatch();
  } finally {
    await listener.close();
    await redis.del(keys.stop('job-1'), keys.stop('job-2'), keys.stop('job-3'), keys.stop('job-4'));
    await redis.quit();
  }
});
