import { test } from 'node:test';
import assert from 'node:assert/strict';
import { idempotentJobId, isJobId, loadConfig, newJobId, parseApiKeys, webhookAttempts, webhookBackoffDelay, FarmError } from '../src/index.js';

test('job ids are ULIDs; idempotency keys map to a stable id per tenant', () => {
  assert.ok(isJobId(newJobId()));
  const a = idempotentJobId('tenant-a', 'key-1');
  assert.ok(isJobId(a), a);
  assert.equal(a, idempotentJobId('tenant-a', 'key-1'));
  assert.notEqual(a, idempotentJobId('tenant-b', 'key-1'));
  assert.notEqual(a, idempotentJobId('tenant-a', 'key-2'));
});

test('API_KEYS gives tenant:key pairs; bare keys get a hashed tenant name', () => {
  const keys = parseApiKeys('alice:alice-secret-1, bob:bob-secret-22,barekey-12345');
  assert.equal(keys.get('alice-secret-1'), 'alice');
  assert.equal(keys.get('bob-secret-22'), 'bob');
  assert.match(keys.get('barekey-12345')!, /^t[0-9a-f]{12}$/);
  assert.throws(() => parseApiKeys('alice:short'), FarmError);
});

test('without API keys the API only listens on loopback', () => {
  assert.equal(loadConfig({}).host, '127.0.0.1');
  assert.throws(() => loadConfig({ HOST: '0.0.0.0' }), (e) => e instanceof FarmError && e.field === 'HOST');
  assert.equal(loadConfig({ API_KEYS: 'a:0123456789' }).host, '0.0.0.0');
  assert.throws(() => loadConfig({ PORT: 'abc' }), (e) => e instanceof FarmError && e.field === 'PORT');
});

test('ATTENTION picks the engine attention, by name or A1111 flag; anything else names the variable', () => {
  assert.equal(loadConfig({}).attention, 'auto');
  assert.equal(loadConfig({ ATTENTION: 'subquad' }).attention, 'subquad');
  assert.equal(loadConfig({ ATTENTION: '--opt-split-attention' }).attention, 'split');
  assert.equal(loadConfig({ ATTENTION: 'xformers' }).attention, 'fused');
  assert.throws(() => loadConfig({ ATTENTION: 'flash' }), (e) => e instanceof FarmError && e.field === 'ATTENTION');
});

test('ORT_INTRA_OP_THREADS sets each session\'s intra-op threads; unset leaves onnxruntime\'s default', () => {
  assert.equal(loadConfig({}).ortIntraOpThreads, null);
  assert.equal(loadConfig({ ORT_INTRA_OP_THREADS: '1' }).ortIntraOpThreads, 1);
  assert.throws(() => loadConfig({ ORT_INTRA_OP_THREADS: '0' }), (e) => e instanceof FarmError && e.field === 'ORT_INTRA_OP_THREADS');
});

test('webhook retries back off exponentially, capped at an hour, for about a day', () => {
  assert.equal(webhookBackoffDelay(1, 5000), 5000);
  assert.equal(webhookBackoffDelay(3, 5000), 20_000);
  assert.equal(webhookBackoffDelay(30, 5000), 3600_000);
  const n = webhookAttempts(5000, 86_400_000);
  let total = 0;
  for (let i = 1; i < n; i++) total += webhookBackoffDelay(i, 5000);
  assert.ok(total <= 86_400_000 && total > 86_400_000 - 3600_000, `${n} attempts span ${total} ms`);
});
