import type { Queryable } from '../../db/pool.js';
import type { SubscriberRow } from './subscribers-types.js';

/**
 * The carrier's record of a number: the one it holds, or else the latest it ported out (read-only
 * history; a carrier that ported a number away and back has one record per holding).
 */
export async function findSubscriber(
  db: Queryable,
  carrierId: string,
  msisdn: string,
  options: { forUpdate?: boolean } = {},
): Promise<SubscriberRow | undefined> {
  const { rows } = await db.query<SubscriberRow>(
    `SELECT * FROM subscribers WHERE carrier_id = $1 AND msisdn = $2
      ORDER BY (status <> 'ported_out') DESC, created_at DESC, id DESC
      LIMIT 1${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [carrierId, msisdn],
  );
  return rows[0];
}

export async function findSubscriberById(
  db: Queryable,
  id: string,
): Promise<SubscriberRow | undefined> {
  const { rows } = await db.query<SubscriberRow>('SELECT * FROM subscribers WHERE id = $1', [id]);
  return rows[0];
}

/** The one record that holds a number (subscribers_msisdn_holder_idx), at whichever carrier. */
export async function findHolder(
  db: Queryable,
  msisdn: string,
  options: { forUpdate?: boolean } = {},
): Promise<SubscriberRow | undefined> {
  const { rows } = await db.query<SubscriberRow>(
    `SELECT * FROM subscribers WHERE msisdn = $1 AND status <> 'ported_out'${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [msisdn],
  );
  return rows[0];
}

/**
 * Locks the subscriber's account row (the lock a port completion holds while it marks the record
 * ported_out), then reads whether the record still holds its number. Two statements on purpose:
 * the second takes its snapshot after the lock was granted, so it sees a completion that
 * committed while this one waited.
 */
export async function lockHeldSubscriber(
  db: Queryable,
  subscriber: Pick<SubscriberRow, 'id' | 'account_id'>,
): Promise<boolean> {
  await db.query('SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE', [subscriber.account_id]);
  const { rows } = await db.query<{ status: string }>(
    'SELECT status FROM subscribers WHERE id = $1',
    [subscriber.id],
  );
  return rows[0]?.status !== 'ported_out';
}

/** Marks a record ported_out: from now on it is read-only history. */
export async function markPortedOut(db: Queryable, id: string): Promise<SubscriberRow> {
  const { rows } = await db.query<SubscriberRow>(
    `UPDATE subscribers SET status = 'ported_out', updated_at = now() WHERE id = $1 RETURNING *`,
    [id],
  );
  return rows[0]!;
}

/** Whether the error is a second holder of a number refused by subscribers_msisdn_holder_idx. */
export function isSecondHolder(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return e?.code === '23505' && e.constraint === 'subscribers_msisdn_holder_idx';
}

export async function insertSubscriber(
  db: Queryable,
  s: Pick<
    SubscriberRow,
    'id' | 'carrier_id' | 'msisdn' | 'funding_type' | 'status' | 'credit_limit' | 'account_id'
  >,
): Promise<SubscriberRow> {
  const { rows } = await db.query<SubscriberRow>(
    `INSERT INTO subscribers (id, carrier_id, msisdn, funding_type, status, credit_limit, account_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
    [s.id, s.carrier_id, s.msisdn, s.funding_type, s.status, s.credit_limit, s.account_id],
  );
  return rows[0]!;
}

export async function updateSubscriber(
  db: Queryable,
  id: string,
  s: Pick<SubscriberRow, 'funding_type' | 'status' | 'credit_limit'>,
): Promise<SubscriberRow> {
  const { rows } = await db.query<SubscriberRow>(
    `UPDATE subscribers SET funding_type = $2, status = $3, credit_limit = $4, updated_at = now()
      WHERE id = $1 RETURNING *`,
    [id, s.funding_type, s.status, s.credit_limit],
  );
  return rows[0]!;
}

/**
 * What a subscriber has spent in the carrier's local day and month (succeeded − refunded, plus
 * what reservations and pending consents hold). `at` (default: now) picks the day and month; with
 * it, charges created after `at` are left out too. Without it there is no upper bound, so charges
 * committed by transactions that began after this one still count.
 */
export async function subscriberSpend(
  db: Queryable,
  subscriberId: string,
  timezone: string,
  at?: Date,
): Promise<{ today: bigint; month: bigint }> {
  // subscriber_spend (migration 0011) is also what the one-step charge statement counts with.
  const { rows } = await db.query<{ today: string; month: string }>(
    `SELECT today::text, month::text
       FROM subscriber_spend($1, $2, coalesce($3::timestamptz, now()), $3::timestamptz)`,
    [subscriberId, timezone, at?.toISOString() ?? null],
  );
  const row = rows[0]!;
  return { today: BigInt(row.today), month: BigInt(row.month) };
}
