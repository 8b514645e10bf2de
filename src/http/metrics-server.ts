import { createServer, type RequestListener, type Server } from 'node:http';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';

export interface MetricsDeps {
  pool: Pick<Pool, 'totalCount' | 'idleCount' | 'waitingCount'>;
  metrics: Metrics;
  logger: Logger;
}

/**
 * The handler of the metrics listener (SPEC §8, §10): `GET /metrics` in the Prometheus text
 * format, 404 for anything else. It is a listener of its own, bound to METRICS_HOST (loopback by
 * default), because route names, pool usage and rate-limit decisions are no business of the
 * public port's callers. No express: it parses no bodies and runs none of the API's middleware.
 */
export function metricsHandler(deps: MetricsDeps): RequestListener {
  const { pool, metrics, logger } = deps;
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not found\n');
      return;
    }
    metrics.poolConnections.set({ state: 'total' }, pool.totalCount);
    metrics.poolConnections.set({ state: 'idle' }, pool.idleCount);
    metrics.poolConnections.set({ state: 'waiting' }, pool.waitingCount);
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        logger.error({ err }, 'metrics collection failed');
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Error\n');
      },
    );
  };
}

/** Starts the metrics listener; resolves once it is bound (port 0 picks a free one). */
export function startMetricsServer(
  deps: MetricsDeps,
  options: { host: string; port: number },
): Promise<Server> {
  const server = createServer(metricsHandler(deps));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      server.on('error', (err) => deps.logger.error({ err }, 'metrics server error'));
      resolve(server);
    });
  });
}
