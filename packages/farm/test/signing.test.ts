import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateWebhookSecret, signWebhook, signatureFor, tenantWebhookSecret, verifyWebhook, WebhookVerificationError } from '../src/index.js';

test('signature matches the Standard Webhooks reference vector', () => {
  // The vector the Standard Webhooks reference libraries test against.
  const sig = signatureFor('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
  assert.equal(sig, 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
});

test('verify accepts a signed body and rejects tampering, stale timestamps and missing headers', () => {
  const secret = generateWebhookSecret();
  const body = JSON.stringify({ type: 'job.completed', data: { job_id: 'x' } });
  const headers = signWebhook(secret, 'msg_1', body);
  assert.deepEqual(verifyWebhook(secret, { ...headers }, body), JSON.parse(body));
  assert.throws(() => verifyWebhook(secret, { ...headers }, body.replace('x', 'y')), (e) => e instanceof WebhookVerificationError && e.code === 'BAD_SIGNATURE');
  assert.throws(() => verifyWebhook(generateWebhookSecret(), { ...headers }, body), (e) => e instanceof WebhookVerificationError && e.code === 'BAD_SIGNATURE');
  const old = signWebhook(secret, 'msg_1', body, Date.now() - 600_000);
  assert.throws(() => verifyWebhook(secret, { ...old }, body), (e) => e instanceof WebhookVerificationError && e.code === 'TIMESTAMP_OUT_OF_RANGE');
  assert.throws(() => verifyWebhook(secret, {}, body), (e) => e instanceof WebhookVerificationError && e.code === 'MISSING_HEADERS');
});

test('any of several space-separated signatures may match (secret rotation)', () => {
  const secret = generateWebhookSecret();
  const body = '{}';
  const h = signWebhook(secret, 'msg_2', body);
  const rotated = { ...h, 'webhook-signature': `v1,AAAA ${h['webhook-signature']}` };
  assert.deepEqual(verifyWebhook(secret, rotated, body), {});
});

test('tenant secrets are stable per tenant and differ between tenants', () => {
  const master = generateWebhookSecret();
  assert.equal(tenantWebhookSecret(master, 'a'), tenantWebhookSecret(master, 'a'));
  assert.notEqual(tenantWebhookSecret(master, 'a'), tenantWebhookSecret(master, 'b'));
  assert.match(tenantWebhookSecret(master, 'a'), /^whsec_[A-Za-z0-9+/]+=*$/);
});
