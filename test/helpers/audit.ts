import pg from 'pg';
import { inject } from 'vitest';
import { runMigrations } from '../../src/db/migrate.js';
import { withTransaction } from '../../src/db/transaction.js';
import { SYSTEM_ACTOR } from '../../src/http/context.js';
import { createLogger } from '../../src/logger.js';
import type { Worker } from '../../src/workers/workers.js';
import type { Harness } from './harness.js';

export interface FreshDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A new, migrated database beside the run's shared one, for tests that tamper with the audit
 * chain: a broken chain in the shared database would fail every other file's verification.
 */
export async function freshDatabase(): Promise<FreshDatabase> {
  const base = inject('databaseUrl');
  const name = `dcb_audit_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  await runMigrations(url.toString(), createLogger('silent'));
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** An admin (or auditor) key made through the bootstrap path, with its id for actor checks. */
export async function staffKey(
  h: Harness,
  role: 'admin' | 'auditor' = 'admin',
): Promise<{ id: string; key: string }> {
  const created = await withTransaction(h.c.pool, (tx) =>
    h.c.apiKeys.createKeyIn(tx, SYSTEM_ACTOR('test'), { role }),
  );
  return { id: created.id, key: created.key };
}

export function auditSealer(h: Harness): Worker {
  const sealer = h.c.workers.find((w) => w.name === 'audit-sealer');
  if (!sealer) throw new Error('the container has no audit-sealer worker');
  return sealer;
}

/** Runs the sealers concurrently until a round in which none of them sealed anything. */
export async function sealAll(...sealers: Worker[]): Promise<number> {
  let total = 0;
  for (;;) {
    const handled = await Promise.all(sealers.map((s) => s.runOnce()));
    const round = handled.reduce((a, b) => a + b, 0);
    total += round;
    if (round === 0) return total;
  }
}

export async function unsealedAmong(h: Harness, ids: string[]): Promise<number> {
  const { rows } = await h.c.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM audit_events AS e
      WHERE e.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM audit_seals AS s WHERE s.event_id = e.id)`,
    [ids],
  );
  return rows[0]!.n;
}

/**
 * Seals until the given events are in the chain. In the shared database another file's sealer
 * may hold the lock for a moment, so one empty round does not prove they are sealed.
 */
export async function sealUntilSealed(h: Harness, ids: string[], ...sealers: Worker[]) {
  for (let attempt = 0; attempt < 500; attempt++) {
    await sealAll(...sealers);
    if ((await unsealedAmong(h, ids)) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`audit events stayed unsealed: ${ids.join(', ')}`);
}
