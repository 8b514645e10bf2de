import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { runMigrations } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';

const logger = createLogger('silent');
const base = inject('databaseUrl');
const created: string[] = [];

async function freshDatabase(): Promise<string> {
  const name = `dcb_mig_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  created.push(name);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

afterAll(async () => {
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
});

describe('migrations', () => {
  it('apply every file once; a second run finds nothing to do', async () => {
    const url = await freshDatabase();
    const first = await runMigrations(url, logger);
    expect(first.length).toBeGreaterThan(0);
    expect(first[0]).toMatch(/^0001_/);
    expect(await runMigrations(url, logger)).toEqual([]);
  });

  it('are safe when several instances start at once: exactly one applies them', async () => {
    const url = await freshDatabase();
    const runs = await Promise.all([1, 2, 3, 4].map(() => runMigrations(url, logger)));
    const appliers = runs.filter((r) => r.length > 0);
    expect(appliers).toHaveLength(1);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query<{ n: string }>(
      'SELECT count(*) AS n FROM schema_migrations',
    );
    await client.end();
    expect(Number(rows[0]!.n)).toBe(appliers[0]!.length);
  });
});
