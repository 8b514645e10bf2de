import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../logger.js';

export const MIGRATIONS_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'migrations',
);

/** Arbitrary constant: the advisory lock every instance takes before migrating. */
const MIGRATION_LOCK_ID = 4_815_162_342;

/**
 * Applies pending migrations. Several instances may start at once: each waits for the same
 * session advisory lock, so exactly one migrates and the others then find nothing to do.
 * (node-pg-migrate's own lock fails fast instead of waiting, so it is replaced by this one.)
 */
export async function runMigrations(databaseUrl: string, logger: Logger): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'dcb-migrate' });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    try {
      const applied = await runner({
        dbClient: client,
        dir: MIGRATIONS_DIR,
        direction: 'up',
        migrationsTable: 'schema_migrations',
        count: Infinity,
        noLock: true,
        checkOrder: true,
        singleTransaction: true,
        verbose: false,
        logger: {
          debug: (msg: string) => logger.debug(msg),
          info: (msg: string) => logger.debug(msg),
          warn: (msg: string) => logger.warn(msg),
          // Numbered files (0001_…) are not timestamps; the runner says so and then orders them numerically.
          error: (msg: string) =>
            msg.startsWith("Can't determine timestamp") ? logger.debug(msg) : logger.error(msg),
        },
      });
      if (applied.length > 0) logger.info({ migrations: applied.map((m) => m.name) }, 'migrated');
      return applied.map((m) => m.name);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
    }
  } finally {
    await client.end();
  }
}
