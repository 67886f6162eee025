import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { freePort, HookReceiver, startFarm, waitFor, type Farm } from './support/farm.js';

/**
 * One tenant's webhook receivers trickle their answer one byte every 2 s and never finish it. Each attempt is
 * cut at the attempt deadline (WEBHOOK_TIMEOUT_MS, a total, not an idle timeout), that tenant holds at most
 * WEBHOOK_TENANT_CONCURRENCY delivery slots, and another tenant's webhook arrives within one attempt deadline.
 */
const DEADLINE_MS = 3_000;
const TENANT_SLOTS = 2;
const SLOW = 'slow-key-0123456789';
const FAST = 'fast-key-0123456789';
const SMALL = { width: 64, height: 64, steps: 1 };

/** Reads the request, then sends a status line and one header byte every 2 s, never ending the headers. */
class TricklingReceiver {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  open = 0;
  maxOpen = 0;
  /** How long each connection lasted before the farm hung up. */
  readonly held: number[] = [];

  constructor(readonly port: number) {
    this.server = createServer((socket) => {
      const opened = performance.now();
      this.sockets.add(socket);
      this.open++;
      this.maxOpen = Math.max(this.maxOpen, this.open);
      let timer: NodeJS.Timeout | undefined;
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nX-Slow: ');
        timer = setInterval(() => socket.write('a'), 2_000);
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        this.sockets.delete(socket);
        this.open--;
        this.held.push(performance.now() - opened);
      });
    });
  }

  url(i: number): string {
    return `http://127.0.0.1:${this.port}/hook/${i}`;
  }

  async start(): Promise<void> {
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}

describe('webhook fairness between tenants', () => {
  let farm: Farm;
  let slow: TricklingReceiver;
  let fast: HookReceiver;

  before(async () => {
    slow = new TricklingReceiver(await freePort());
    await slow.start();
    fast = new HookReceiver(await freePort());
    await fast.start();
    farm = await startFarm({
      workers: 1,
      env: {
        API_KEYS: `slow:${SLOW},fast:${FAST}`, WEBHOOK_ALLOWLIST: '127.0.0.1', WEBHOOK_TIMEOUT_MS: String(DEADLINE_MS),
        WEBHOOK_TENANT_CONCURRENCY: String(TENANT_SLOTS), WEBHOOK_CONCURRENCY: '8', WEBHOOK_RETRY_BASE_MS: '60000',
      },
    });
  });

  after(async () => {
    await farm?.stop();
    await slow?.stop();
    await fast?.stop();
  });

  test('16 trickling receivers of one tenant delay another tenant by less than one attempt deadline', async () => {
    const slowJobs: string[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await farm.request('POST', '/v1/txt2img', {
        key: SLOW, body: { ...SMALL, prompt: `slow ${i}`, webhook: { url: slow.url(i), events: ['queued'] } },
      });
      assert.equal(r.status, 202);
      slowJobs.push((r.json as { id: string }).id);
    }
    await waitFor('the slow tenant holding delivery slots', async () => slow.open >= TENANT_SLOTS, 15_000, 20);

    const sent = performance.now();
    const r = await farm.request('POST', '/v1/txt2img', { key: FAST, body: { ...SMALL, prompt: 'fast', webhook: { url: fast.url, events: ['queued'] } } });
    assert.equal(r.status, 202);
    await waitFor('the other tenant\'s webhook', async () => fast.received.length > 0, 2 * DEADLINE_MS + 5_000, 10);
    const delay = performance.now() - sent;
    console.log(`# other tenant's webhook arrived ${Math.round(delay)} ms after its job was queued (attempt deadline ${DEADLINE_MS} ms)`);
    assert.ok(delay < DEADLINE_MS, `the other tenant waited ${Math.round(delay)} ms, more than one attempt deadline`);

    // Every trickling attempt is cut at the deadline, and the slow tenant never held more than its slots.
    await waitFor('a round of slow attempts cut', async () => slow.held.length >= 2 * TENANT_SLOTS, 3 * DEADLINE_MS + 5_000, 50);
    const longest = Math.max(...slow.held);
    console.log(`# ${slow.held.length} trickling attempts cut after ${Math.round(Math.min(...slow.held))}-${Math.round(longest)} ms; at most ${slow.maxOpen} at once`);
    assert.ok(longest < DEADLINE_MS + 1_000, `an attempt held its connection ${Math.round(longest)} ms`);
    assert.ok(longest > DEADLINE_MS - 500, 'attempts ran to the deadline (the receiver never finished its answer)');
    assert.ok(slow.maxOpen <= TENANT_SLOTS, `the slow tenant held ${slow.maxOpen} slots at once`);

    const cut = await waitFor('a failed attempt in a delivery log', async () => {
      for (const id of slowJobs) {
        const log = ((await farm.request('GET', `/v1/jobs/${id}/webhooks`, { key: SLOW })).json as { deliveries: { ok: boolean; error: string; duration_ms: number; attempt: number }[] }).deliveries;
        if (log.length > 0) return log[0]!;
      }
      return null;
    }, 10_000, 100);
    assert.equal(cut.ok, false);
    assert.equal(cut.attempt, 1, 'waiting for a tenant slot spends no attempt');
    assert.match(cut.error, /WEBHOOK_TIMEOUT_MS/);
    assert.ok(cut.duration_ms < DEADLINE_MS + 1_000);
  });
});
