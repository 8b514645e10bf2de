import { loadConfig } from '../config.js';
import { createContainer, type Container } from '../container.js';
import { runMigrations } from '../db/migrate.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../logger.js';
import { createMetrics } from '../metrics.js';

/**
 * Runs `work` with the services wired to the database named by DATABASE_URL (migrated first),
 * without HTTP, Redis or workers. Returns 2 with a message when DATABASE_URL is unset.
 */
export async function withCliContainer(
  purpose: string,
  work: (c: Container) => Promise<number>,
): Promise<number> {
  const config = loadConfig();
  if (!config.DATABASE_URL) {
    process.stderr.write(`DATABASE_URL is required: ${purpose}\n`);
    return 2;
  }
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, undefined);
  await runMigrations(config.DATABASE_URL, logger);
  const pool = createPool(
    {
      connectionString: config.DATABASE_URL,
      max: 2,
      statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS,
    },
    logger,
  );
  try {
    const c = createContainer({
      config,
      pool,
      redis: null,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    return await work(c);
  } finally {
    await pool.end();
  }
}
