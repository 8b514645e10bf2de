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

/** A table's row count and an order-independent digest of its rows' text. */
export interface TableDigest {
  rows: number;
  md5: string;
}

/**
 * Every table of the public schema (partitions included) as row count and digest, so that any
 * insert, update or delete shows, not only a change of count. `exclude` names tables left out.
 */
export async function tableDigests(
  db: pg.ClientBase,
  exclude: readonly string[] = [],
): Promise<Record<string, TableDigest>> {
  const { rows } = await db.query<{ tablename: string }>(
    `SELECT tablename FROM pg_tables
      WHERE schemaname = 'public' AND NOT (tablename = ANY($1::text[]))
      ORDER BY tablename`,
    [['schema_migrations', ...exclude]],
  );
  if (rows.length === 0) return {};
  const select = rows
    .map(
      ({ tablename }) =>
        `SELECT ${pg.escapeLiteral(tablename)} AS t, count(*)::int AS n,
                coalesce(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '') AS h
           FROM ${pg.escapeIdentifier(tablename)} x`,
    )
    .join(' UNION ALL ');
  const digests = await db.query<{ t: string; n: number; h: string }>(select);
  return Object.fromEntries(digests.rows.map((r) => [r.t, { rows: r.n, md5: r.h }]));
}

/** The tables whose digest differs between two snapshots, with their row counts before → after. */
export function changedTables(
  before: Record<string, TableDigest>,
  after: Record<string, TableDigest>,
): string[] {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return names
    .filter((t) => before[t]?.md5 !== after[t]?.md5 || before[t]?.rows !== after[t]?.rows)
    .map((t) => `${t} (${before[t]?.rows ?? '-'} → ${after[t]?.rows ?? '-'} rows)`);
}
