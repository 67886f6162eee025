import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkWebhookUrlSyntax, isAllowlisted, isPrivateAddress, resolveDeliverableAddress, SsrfError } from '../src/index.js';

test('private, loopback, link-local, metadata and reserved addresses are refused', () => {
  for (const ip of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
    '224.0.0.1', '::1', '::', 'fe80::1', 'fd00:ec2::254', 'fc00::1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '64:ff9b::a9fe:a9fe', 'not-an-ip']) {
    assert.equal(isPrivateAddress(ip), true, ip);
  }
  for (const ip of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
    assert.equal(isPrivateAddress(ip), false, ip);
  }
});

test('the allow-list takes hostnames, IPs and CIDR ranges', () => {
  assert.equal(isAllowlisted('hooks.internal', '10.0.0.5', ['hooks.internal']), true);
  assert.equal(isAllowlisted('x', '10.0.0.5', ['10.0.0.0/8']), true);
  assert.equal(isAllowlisted('x', '11.0.0.5', ['10.0.0.0/8']), false);
  assert.equal(isAllowlisted('x', '127.0.0.1', ['127.0.0.1']), true);
  assert.equal(isAllowlisted('x', 'fd00::5', ['fd00::/8']), true);
});

test('delivery resolution refuses loopback unless allow-listed, including names that resolve there', async () => {
  await assert.rejects(resolveDeliverableAddress(new URL('http://127.0.0.1:9/x'), []), SsrfError);
  await assert.rejects(resolveDeliverableAddress(new URL('http://localhost:9/x'), []), SsrfError);
  await assert.rejects(resolveDeliverableAddress(new URL('http://[::1]:9/x'), []), SsrfError);
  await assert.rejects(resolveDeliverableAddress(new URL('ftp://8.8.8.8/x'), []), SsrfError);
  assert.deepEqual(await resolveDeliverableAddress(new URL('http://127.0.0.1:9/x'), ['127.0.0.1']), { address: '127.0.0.1', family: 4 });
  assert.deepEqual(await resolveDeliverableAddress(new URL('http://8.8.8.8/x'), []), { address: '8.8.8.8', family: 4 });
});

test('submission-time check refuses literal private hosts and credentials', () => {
  assert.match(checkWebhookUrlSyntax('http://169.254.169.254/latest', [])!, /private/);
  assert.match(checkWebhookUrlSyntax('http://localhost/x', [])!, /localhost/);
  assert.match(checkWebhookUrlSyntax('http://u:p@example.com/x', [])!, /credentials/);
  assert.equal(checkWebhookUrlSyntax('https://example.com/hook', []), null);
  assert.equal(checkWebhookUrlSyntax('http://127.0.0.1:8080/hook', ['127.0.0.1']), null);
});

test('every IPv6 form that embeds an IPv4 address is judged by the IPv4 inside', () => {
  const refused = [
    '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:FFFF:7F00:0001', '::ffff:0:7f00:1', '::ffff:0:127.0.0.1', '::ffff:0:a00:1',
    '::127.0.0.1', '::a9fe:a9fe',
    '64:ff9b::127.0.0.1', '64:ff9b::a00:1',
    '64:ff9b:1::7f00:1', '64:ff9b:1::10.0.0.1', '64:ff9b:1:7f00:0:100::', '64:ff9b:1:ab:7f:0:100::',
    '2002:7f00:1::', '2002:a00:1::1', '2002:c0a8:101:1::1', '2002:a9fe:a9fe::',
    // Teredo: client 127.0.0.1 stored inverted (80ff:fffe), and one whose server is private.
    '2001:0:4136:e378:8000:63bf:80ff:fffe', '2001:0:a00:1:0:0:f7f7:f7f7',
  ];
  for (const ip of refused) assert.equal(isPrivateAddress(ip), true, ip);
  for (const ip of ['::ffff:0:808:808', '64:ff9b::8.8.8.8', '64:ff9b:1::808:808', '2002:808:808::1', '::ffff:8.8.8.8']) {
    assert.equal(isPrivateAddress(ip), false, ip);
  }
  // What a URL makes of the spelling does not matter either.
  for (const raw of ['http://[::ffff:0:7f00:1]/x', 'http://[64:ff9b:1::a00:1]/x', 'http://[2002:7f00:1::]/x']) {
    assert.match(checkWebhookUrlSyntax(raw, [])!, /private/, raw);
  }
});
