import { readdirSync } from 'node:fs';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { MIGRATIONS_DIR, runMigrations } from '../src/db/migrate.js';
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

  it('0013 keeps the earliest holder of a duplicated number and marks later ones ported_out, deleting nothing', async () => {
    const url = await freshDatabase();
    const before = readdirSync(MIGRATIONS_DIR).filter(
      (f) => /^\d{4}_.*\.sql$/.test(f) && f < '0013',
    );
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const notices: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    try {
      await runner({
        dbClient: client,
        dir: MIGRATIONS_DIR,
        direction: 'up',
        migrationsTable: 'schema_migrations',
        count: before.length,
        singleTransaction: true,
        noLock: true,
        log: () => undefined,
      });
      await client.query(`
        INSERT INTO carriers (id, code, name, currency, timezone, revenue_share_bps) VALUES
          ('car_a', 'car-a', 'A', 'VND', 'Asia/Ho_Chi_Minh', 3000),
          ('car_b', 'car-b', 'B', 'VND', 'Asia/Ho_Chi_Minh', 3000),
          ('car_c', 'car-c', 'C', 'VND', 'Asia/Ho_Chi_Minh', 3000);
        INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot, posted, floor) VALUES
          ('acc_1', 'subscriber', 'sub_1', 'VND', false, 0, 0),
          ('acc_2', 'subscriber', 'sub_2', 'VND', false, 7000, 0),
          ('acc_3', 'subscriber', 'sub_3', 'VND', false, 0, 0),
          ('acc_4', 'subscriber', 'sub_4', 'VND', false, 0, 0);
        INSERT INTO subscribers (id, carrier_id, msisdn, funding_type, status, account_id, created_at) VALUES
          ('sub_2', 'car_b', '+84901111111', 'prepaid', 'active', 'acc_2', now() - interval '1 day'),
          ('sub_1', 'car_a', '+84901111111', 'prepaid', 'suspended', 'acc_1', now() - interval '2 days'),
          ('sub_3', 'car_c', '+84901111111', 'prepaid', 'active', 'acc_3', now()),
          ('sub_4', 'car_a', '+84902222222', 'prepaid', 'active', 'acc_4', now());
      `);
      // 0013 on this connection, to hear its notice; then the rest as the gateway applies them.
      await runner({
        dbClient: client,
        dir: MIGRATIONS_DIR,
        direction: 'up',
        migrationsTable: 'schema_migrations',
        count: 1,
        singleTransaction: true,
        noLock: true,
        log: () => undefined,
      });
      expect(notices.join('\n')).toMatch(
        /2 later duplicate subscriber record\(s\) of 1 number\(s\) marked ported_out/,
      );
      await runMigrations(url, logger);
      const { rows } = await client.query<{ id: string; status: string; posted: string }>(
        `SELECT s.id, s.status, a.posted::text AS posted
           FROM subscribers s JOIN ledger_accounts a ON a.id = s.account_id ORDER BY s.id`,
      );
      expect(rows).toEqual([
        { id: 'sub_1', status: 'suspended', posted: '0' },
        { id: 'sub_2', status: 'ported_out', posted: '7000' },
        { id: 'sub_3', status: 'ported_out', posted: '0' },
        { id: 'sub_4', status: 'active', posted: '0' },
      ]);
      const audit = await client.query<{ object_id: string; summary: Record<string, unknown> }>(
        `SELECT object_id, summary FROM audit_events WHERE action = 'subscriber.ported_out' ORDER BY object_id`,
      );
      expect(
        audit.rows.map((r) => [
          r.object_id,
          r.summary.previous_status,
          r.summary.kept_subscriber_id,
        ]),
      ).toEqual([
        ['sub_2', 'active', 'sub_1'],
        ['sub_3', 'active', 'sub_1'],
      ]);
      expect(JSON.stringify(audit.rows)).not.toContain('+84901111111');
      // From now on the database refuses a second holder.
      await client.query(
        `INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot) VALUES ('acc_5', 'subscriber', 'sub_5', 'VND', false)`,
      );
      await expect(
        client.query(
          `INSERT INTO subscribers (id, carrier_id, msisdn, funding_type, status, account_id)
           VALUES ('sub_5', 'car_b', '+84902222222', 'prepaid', 'active', 'acc_5')`,
        ),
      ).rejects.toMatchObject({ code: '23505' });
    } finally {
      await client.end();
    }
  });
});
