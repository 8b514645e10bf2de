import { Router } from 'express';
import type { Redis } from 'ioredis';
import type { Pool } from '../db/pool.js';

/** Liveness and readiness on the public port; /metrics has a listener of its own (metrics-server.ts). */
export function healthRoutes(deps: { pool: Pool; redis: Redis | null }): Router {
  const { pool, redis } = deps;
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

  return router;
}
