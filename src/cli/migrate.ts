import { loadConfig } from '../config.js';
import { runMigrations } from '../db/migrate.js';
import { createLogger } from '../logger.js';

/** `npm run db:migrate`: applies pending migrations to DATABASE_URL. */
const config = loadConfig();
const logger = createLogger(config.LOG_LEVEL);
if (!config.DATABASE_URL) {
  process.stderr.write(
    'DATABASE_URL is required (npm start migrates the embedded database itself).\n',
  );
  process.exit(1);
}
const applied = await runMigrations(config.DATABASE_URL, logger);
process.stdout.write(applied.length ? `Applied: ${applied.join(', ')}\n` : 'Nothing to migrate.\n');
