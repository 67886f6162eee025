import express, { type Express, type RequestHandler } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { queueBacklog } from '@darkroom/farm';
import { requireAdmin, requireTenant } from './auth.js';
import type { ApiContext } from './context.js';
import { fleetHealth } from './fleet-health.js';
import { jsonDepthLimit } from './json-depth.js';
import { errorHandler, notFound } from './http-errors.js';
import { sdapiErrorHandler, sdapiNotFound } from './sdapi-errors.js';
import { openApiDocument } from './openapi.js';
import { rateLimit } from './rate-limit.js';
import { allConnected, requireRedis } from './redis-guard.js';
import { exceptAssetUploads } from './raw-uploads.js';
import { assetRoutes } from './routes/assets.js';
import { datasetRoutes } from './routes/datasets.js';
import { flowRoutes } from './routes/flows.js';
import { jobRoutes } from './routes/jobs.js';
import { styleRoutes } from './routes/styles.js';
import { sdapiRoutes } from './routes/sdapi.js';
import { sdapiTrainingRoutes } from './routes/sdapi-training.js';
import { trainingRoutes } from './routes/trainings.js';
import { webRoutes } from './web.js';

function timing(ctx: ApiContext): RequestHandler {
  return (req, res, next) => {
    const start = performance.now();
    res.on('finish', () => {
      const seconds = (performance.now() - start) / 1000;
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      ctx.metrics.http.observe({ method: req.method, route: `${req.baseUrl}${route}`, status: String(res.statusCode) }, seconds);
      ctx.log.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(seconds * 1000) }, 'request');
    });
    next();
  };
}

/** The HTTP API: `/v1` (async jobs), `/sdapi/v1` (A1111), health, metrics, OpenAPI and the queue dashboard. */
export function createApp(ctx: ApiContext): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(timing(ctx));

  // The API's two Redis connections, its own and its queues': each reconnects on its own.
  const connections = [ctx.redis, ctx.bull];
  app.get('/healthz', async (_req, res) => {
    // Not connected: no need to wait out the command deadline to know. Both connections, as requests need both.
    const redisOk = allConnected(connections) && (await ctx.redis.ping().catch(() => null)) === 'PONG';
    res.status(redisOk ? 200 : 503).json({ ok: redisOk, redis: redisOk, storage: ctx.storage.driver, ...(redisOk ? await fleetHealth(ctx) : {}) });
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument(ctx.cfg.publicUrl));
  });
  const metricsGuard: RequestHandler = ctx.cfg.adminKey ? requireAdmin(ctx.cfg) : (_req, _res, next) => next();
  app.get('/metrics', metricsGuard, async (_req, res) => {
    res.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
  app.get('/v1/queue', requireAdmin(ctx.cfg), async (_req, res) => {
    // `load` counts running jobs too: an autoscaler must not scale in a process that holds one (see keda.yaml).
    const counts = async (q: typeof ctx.queues.generate) => {
      const c = await q.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
      const backlog = await queueBacklog(q);
      return { backlog, load: backlog + (c.active ?? 0), ...c };
    };
    res.json({ generate: await counts(ctx.queues.generate), train: await counts(ctx.queues.train) });
  });

  if (ctx.cfg.adminKey) {
    const board = new ExpressAdapter();
    board.setBasePath('/admin/queues');
    createBullBoard({
      queues: [new BullMQAdapter(ctx.queues.generate), new BullMQAdapter(ctx.queues.train), new BullMQAdapter(ctx.queues.webhooks)],
      // @bull-board/express and @bull-board/api are published separately; their adapter types differ by a patch version.
      serverAdapter: board as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'] });
    app.use('/admin/queues', requireAdmin(ctx.cfg), board.getRouter() as RequestHandler);
  }

  const json = exceptAssetUploads(express.json({ limit: ctx.cfg.maxBodyBytes, strict: false }));
  const limit = rateLimit(ctx.redis, ctx.keys, ctx.cfg.rateLimitPerMinute);
  const redisUp = requireRedis(connections);
  app.use('/sdapi', requireTenant(ctx.cfg, { allowBasic: true }), redisUp, limit);
  app.use('/v1', requireTenant(ctx.cfg, { allowBasic: false }), redisUp, limit);
  app.use(webRoutes(ctx)); // the page at `/` and `/v1/gallery`, before `/v1/:kind` could claim it
  // Datasets before assets: `/v1/:kind` would otherwise claim `/v1/datasets`.
  app.use(json, jsonDepthLimit, sdapiRoutes(ctx), sdapiTrainingRoutes(ctx), styleRoutes(ctx), jobRoutes(ctx), flowRoutes(ctx), trainingRoutes(ctx), datasetRoutes(ctx), assetRoutes(ctx));

  // /sdapi/v1 answers in A1111's (FastAPI's) shapes: `detail` on every refusal, 422 lists for bad bodies.
  app.use('/sdapi', sdapiNotFound, sdapiErrorHandler);
  app.use(notFound);
  app.use(errorHandler(ctx.log));
  return app;
}
