import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PLAIN_ATTENTION_MEMORY } from '@darkroom/core/pipeline/memory-estimate.js';
import { heldKeys, routeJob, type RouteQuestion, type WorkerAdvert } from '../src/index.js';

const worker = (name: string, models: string[], job: string | null = null): WorkerAdvert => ({
  name, queue: 'generate', budgetBytes: 8 * 1024 ** 3, attention: PLAIN_ATTENTION_MEMORY, host: 'h', pid: 1, startedAt: '', job, models,
});
const policy = { waitMs: 5_000, retryMs: 250 };
const ask = (q: Partial<RouteQuestion>): ReturnType<typeof routeJob> => routeJob({
  key: 'A', self: 'me', held: [], live: [], fits: () => true, firstHandBackAt: null, now: 100_000, policy, ...q,
});

test('a job is taken where its checkpoint is held, and at once when nobody holds it or it names the demo model', () => {
  const live = [worker('a', ['A'])];
  assert.deepEqual(ask({ held: ['A'], live }), { action: 'take', reason: 'held-here' });
  assert.deepEqual(ask({ key: null, live }), { action: 'take', reason: 'unrouted' });
  assert.deepEqual(ask({ live: [worker('b', ['B'])] }), { action: 'take', reason: 'nobody-holds-it' });
  // The claimer's own advert never counts as another warm worker.
  assert.deepEqual(ask({ live: [worker('me', ['A'])] }), { action: 'take', reason: 'nobody-holds-it' });
});

test('an idle warm worker gets the job at once; busy ones get it out of sight for retryMs', () => {
  assert.deepEqual(ask({ live: [worker('a', ['A'], 'job-1'), worker('a2', ['A'])] }), { action: 'hand-back', to: 'idle', delayMs: 0, workers: ['a2'] });
  assert.deepEqual(ask({ live: [worker('a', ['A'], 'job-1')] }), { action: 'hand-back', to: 'busy', delayMs: 250, workers: ['a'] });
});

test('a warm worker whose budget cannot hold the job does not count', () => {
  assert.deepEqual(ask({ live: [worker('a', ['A'])], fits: (w) => w.name !== 'a' }), { action: 'take', reason: 'nobody-holds-it' });
});

test('the wait is bounded from the first hand-back: past waitMs any worker takes the job', () => {
  const live = [worker('a', ['A'], 'job-1')];
  assert.equal(ask({ live, firstHandBackAt: 100_000 - 4_999 }).action, 'hand-back');
  assert.deepEqual(ask({ live, firstHandBackAt: 100_000 - 5_000 }), { action: 'take', reason: 'waited-enough' });
});

test('held keys: the engine\'s loaded paths through the files this worker resolved, demo and unknown paths left out', () => {
  const keys = new Map([['/c/a.safetensors', 'A'], ['/c/b.safetensors', 'B']]);
  assert.deepEqual(heldKeys(['/c/b.safetensors', '', '/c/x.safetensors', '/c/a.safetensors'], keys), ['B', 'A']);
});
