import pg from 'pg';
import { inject } from 'vitest';
import { runMigrations } from '../../../src/db/migrate.js';
import { createLogger } from '../../../src/logger.js';

const created: string[] = [];

/**
 * A new, migrated database on the run's PostgreSQL, so a chaos test may count rows globally and
 * let a gateway process of its own loose on it. Dropped by `dropFreshDatabases`.
 */
export async function freshDatabase(label: string): Promise<string> {
  const base = inject('databaseUrl');
  const name = `dcb_chaos_${label}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  await withDatabase(base, (db) => db.query(`CREATE DATABASE ${name}`));
  created.push(name);
  const url = new URL(base);
  url.pathname = `/${name}`;
  await runMigrations(url.toString(), createLogger('warn'));
  return url.toString();
}

export async function dropFreshDatabases(): Promise<void> {
  const base = inject('databaseUrl');
  await withDatabase(base, async (db) => {
    for (const name of created.splice(0)) {
      await db.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });
}

/** Runs `fn` on a short-lived connection of its own (never through the gateway's pool). */
export async function withDatabase<T>(url: string, fn: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: url, application_name: 'dcb-chaos-test' });
  await db.connect();
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}

/** Row counts of every table a request could write to. */
export async function rowCounts(db: pg.ClientBase): Promise<Record<string, number>> {
  const { rows } = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
      ORDER BY table_name`,
  );
  const select = rows
    .map((r) => `SELECT '${r.table_name}' AS t, count(*)::int AS n FROM "${r.table_name}"`)
    .join(' UNION ALL ');
  const counts = await db.query<{ t: string; n: number }>(select);
  return Object.fromEntries(counts.rows.map((r) => [r.t, r.n]));
}

/** A fresh database (as `freshDatabase`) and a client on it, for the test's own queries. */
export async function openFreshDatabase(
  label: string,
): Promise<{ databaseUrl: string; db: pg.Client }> {
  const databaseUrl = await freshDatabase(label);
  const db = new pg.Client({ connectionString: databaseUrl, application_name: 'dcb-chaos-test' });
  await db.connect();
  return { databaseUrl, db };
}
