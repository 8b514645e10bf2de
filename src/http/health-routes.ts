import { Router } from 'express';
import type { Redis } from 'ioredis';
import type { Pool } from '../db/pool.js';
import type { Metrics } from '../metrics.js';

export function healthRoutes(deps: { pool: Pool; redis: Redis | null; metrics: Metrics }): Router {
  const { pool, redis, metrics } = deps;
  const router = Router();

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    let postgres: 'ok' | 'down' = 'ok';
    try {
      await pool.query('SELECT 1');
    } catch {
      postgres = 'down';
    }
    let redisState: 'ok' | 'degraded' | 'in_process' = 'in_process';
    if (redis) {
      try {
        await redis.ping();
        redisState = 'ok';
      } catch {
        redisState = 'degraded';
      }
    }
    // Redis only carries rate limits, which fall back in process: it never makes the service unready.
    res.status(postgres === 'ok' ? 200 : 503).json({
      status: postgres === 'ok' ? 'ready' : 'unavailable',
      postgres,
      redis: redisState,
    });
  });

  router.get('/metrics', async (_req, res) => {
    metrics.poolConnections.set({ state: 'total' }, pool.totalCount);
    metrics.poolConnections.set({ state: 'idle' }, pool.idleCount);
    metrics.poolConnections.set({ state: 'waiting' }, pool.waitingCount);
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  return router;
}
