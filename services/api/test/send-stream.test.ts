/**
 * sendStream over real HTTP: a client that leaves mid-body destroys the source stream (its storage socket goes
 * back to the pool); a whole body arrives intact; a source failing mid-body cuts the response short.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request, type Server } from 'node:http';
import { Readable } from 'node:stream';
import express from 'express';
import { sendStream } from '../src/send-stream.js';

/** A source that never ends by itself: 64 KiB chunks for as long as it is read. */
function endless(): Readable {
  return new Readable({ read() { this.push(Buffer.alloc(64 * 1024, 7)); } });
}

async function serve(source: () => Readable): Promise<{ server: Server; port: number }> {
  const app = express();
  app.get('/f', async (_req, res) => {
    res.type('application/octet-stream');
    await sendStream(source(), res);
  });
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

describe('sendStream', () => {
  test('a client that leaves mid-body destroys the source stream', async () => {
    let src: Readable | null = null;
    const { server, port } = await serve(() => (src = endless()));
    try {
      const req = request({ host: '127.0.0.1', port, path: '/f' });
      req.end();
      const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage];
      res.on('error', () => undefined);
      await once(res, 'data');
      req.destroy();
      const source = src as Readable | null;
      assert.ok(source, 'the route made its source');
      // Destroyed with pipeline's premature-close error: only its closing matters here.
      source.on('error', () => undefined);
      const closed = new Promise((yes) => source.on('close', yes));
      if (!source.destroyed) await Promise.race([closed, new Promise((_, no) => setTimeout(() => no(new Error('the source outlived its client by 5 s')), 5000))]);
      assert.equal(source.destroyed, true);
    } finally {
      server.close();
    }
  });

  test('a whole body arrives intact', async () => {
    const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
    const { server, port } = await serve(() => Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]));
    try {
      const got = Buffer.from(await (await fetch(`http://127.0.0.1:${port}/f`)).arrayBuffer());
      assert.equal(Buffer.compare(got, body), 0);
    } finally {
      server.close();
    }
  });

  test('a source failing mid-body cuts the response short instead of leaving the client waiting', async () => {
    const failing = () => {
      let sent = false;
      return new Readable({
        read() {
          if (sent) this.destroy(new Error('storage went away'));
          else this.push(Buffer.alloc(1000, 1));
          sent = true;
        },
      });
    };
    const { server, port } = await serve(failing);
    try {
      // Headers may or may not have gone out before the failure: either way the call fails, and soon.
      const call = fetch(`http://127.0.0.1:${port}/f`).then((r) => r.arrayBuffer());
      await assert.rejects(Promise.race([call, new Promise((_, no) => setTimeout(() => no(new Error('hung')), 5000))]), (e: Error) => e.message !== 'hung');
    } finally {
      server.close();
    }
  });
});
