import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import { buildApp } from './app.js';
import { assertServerConfig, ConfigError, loadConfig, type Config } from './config.js';
import { createContainer, type Container } from './container.js';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './db/embedded.js';
import { runMigrations } from './db/migrate.js';
import { createPool } from './db/pool.js';
import { answerClientErrors } from './http/client-errors.js';
import { startMetricsServer } from './http/metrics-server.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics } from './metrics.js';
import { seedSandbox, type SandboxSeed } from './sandbox/sandbox-seed.js';
import { startWorkers, type Workers } from './workers/workers.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
    assertServerConfig(config);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.LOG_LEVEL);
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.error({ err }, 'error during shutdown');
      }
    }
  };

  try {
    let databaseUrl = config.DATABASE_URL;
    let embedded: EmbeddedDatabase | undefined;
    if (databaseUrl === undefined) {
      embedded = await startEmbeddedPostgres(
        config.EMBEDDED_PG_DIR,
        config.EMBEDDED_PG_PORT,
        logger,
      );
      stops.push(() => embedded!.stop());
      databaseUrl = embedded.databaseUrl;
    }
    await runMigrations(databaseUrl, logger);

    // query_timeout backs statement_timeout up when the server goes silent (a partition).
    const pool = createPool(
      {
        connectionString: databaseUrl,
        max: config.PG_POOL_MAX,
        statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS,
        queryTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS + 5_000,
      },
      logger,
    );
    stops.push(() => pool.end());
    const bulkPool = createPool(
      {
        connectionString: databaseUrl,
        max: 4,
        statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS,
        queryTimeoutMs: config.BULK_STATEMENT_TIMEOUT_MS + 5_000,
        applicationName: 'dcb-gateway-bulk',
      },
      logger,
    );
    stops.push(() => bulkPool.end());
    const redis = config.REDIS_URL ? createRedis(config.REDIS_URL, logger) : null;
    if (redis)
      stops.push(() =>
        redis.quit().then(
          () => undefined,
          () => redis.disconnect(),
        ),
      );

    const container = createContainer({
      config,
      pool,
      bulkPool,
      redis,
      logger,
      metrics: createMetrics(),
      authChangesUrl: databaseUrl,
    });
    const authChanges = container.authChanges;
    if (authChanges) {
      await authChanges.start();
      stops.push(() => authChanges.stop());
    }
    const seeded = config.SANDBOX ? await seedSandbox(container) : undefined;

    const workers: Workers | undefined = config.WORKERS_ENABLED
      ? startWorkers(container)
      : undefined;
    if (workers) stops.push(() => workers.stop());

    // Its own listener, loopback by default: the public port does not serve /metrics. Closed
    // after the public server on shutdown, so a scrape still sees the drain.
    const metricsServer = await startMetricsServer(container, {
      host: config.METRICS_HOST,
      port: config.METRICS_PORT,
    });
    stops.push(() => closeServer(metricsServer, config.SHUTDOWN_TIMEOUT_MS));
    const metricsAddress = metricsServer.address();
    logger.info(
      {
        host: config.METRICS_HOST,
        port: typeof metricsAddress === 'object' && metricsAddress ? metricsAddress.port : null,
      },
      'metrics listening',
    );

    const server = await listen(container, logger);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.PORT;
    logger.info(
      { port, sandbox: config.SANDBOX, embedded: embedded !== undefined },
      'gateway listening',
    );
    stops.push(() => closeServer(server, config.SHUTDOWN_TIMEOUT_MS));
    if (config.SANDBOX) printSandbox(seeded ?? null, port, databaseUrl);

    let shuttingDown = false;
    const shutdown = (signal: string) => {
      if (shuttingDown) return;
      shuttingDown = true;
      logger.info({ signal }, 'shutting down');
      void stopAll().then(() => process.exit(0));
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
  } catch (err) {
    logger.fatal({ err }, 'failed to start');
    await stopAll();
    process.exit(1);
  }
}

function createRedis(url: string, logger: Logger): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    commandTimeout: 200,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  });
  redis.on('error', (err: Error) => logger.debug({ err: err.message }, 'redis connection error'));
  return redis;
}

function listen(c: Container, logger: Logger): Promise<Server> {
  const app = buildApp(c);
  return new Promise((resolve, reject) => {
    const server = app.listen(c.config.PORT, c.config.HOST, (err?: Error) => {
      if (err) reject(err);
      else resolve(server);
    });
    server.keepAliveTimeout = 65_000;
    answerClientErrors(server, logger);
    server.on('error', (err) => logger.error({ err }, 'HTTP server error'));
  });
}

/** Stops accepting connections, lets in-flight requests finish, then closes idle keep-alives. */
function closeServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.closeAllConnections();
      resolve();
    }, timeoutMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

function printSandbox(seeded: SandboxSeed | null, port: number, databaseUrl: string): void {
  const base = `http://localhost:${port}`;
  if (!seeded) {
    process.stdout.write(
      `\nGateway (sandbox) listening on ${base}\n` +
        'Sandbox data was seeded on an earlier start; its keys were printed then.\n' +
        `A new admin key, while the gateway runs:\n  DATABASE_URL=${databaseUrl} npm run admin -- create-admin-key\n`,
    );
    return;
  }
  const admin = seeded.keys.find((k) => k.role === 'admin')?.key ?? '';
  const lines = [
    '',
    `Gateway (sandbox) listening on ${base}`,
    '',
    'API keys (shown once, stored only as hashes):',
    ...seeded.keys.map((k) => `  ${k.role.padEnd(9)} ${k.key}${k.owner ? `   (${k.owner})` : ''}`),
    '',
    ...(seeded.subscribers.length ? [`Subscribers: ${seeded.subscribers.join(', ')}`, ''] : []),
    'Try:',
    `  curl -s ${base}/v1/admin/merchants -H "Authorization: Bearer ${admin}"`,
    ...seeded.tryCommands(base).map((cmd) => `  ${cmd}`),
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

void main();
