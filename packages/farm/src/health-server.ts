import http from 'node:http';

/** What `/metrics` serves (a prom-client Registry fits). */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** `/healthz` (200 while the engine thread and Redis are up, else 503) and `/metrics` on a worker's own port. */
export function startHealthServer(opts: {
  host: string;
  port: number;
  registry: MetricsSource;
  status: () => Promise<{ ok: boolean } & Record<string, unknown>>;
}): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      opts.status().then(
        (s) => {
          res.writeHead(s.ok ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify(s));
        },
        (e: Error) => {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: false, error: e.message }));
        },
      );
    } else if (path === '/metrics') {
      opts.registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': opts.registry.contentType });
        res.end(body);
      }, () => {
        res.writeHead(500);
        res.end();
      });
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"code":"NOT_FOUND","message":"only /healthz and /metrics live here"}}');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve(server));
  });
}
