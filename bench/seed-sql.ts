import pg from 'pg';
import { newId } from '../src/lib/ids.js';
import { maskMsisdn } from '../src/lib/msisdn.js';

export interface BulkSubscribers {
  carrierId: string;
  /** The carrier key's id, recorded as the actor of the audit events (as the API would). */
  carrierKeyId: string;
  currency: string;
  msisdns: string[];
  /** Top-up per subscriber, in minor units. */
  amount: string;
}

/**
 * Creates funded prepaid subscribers in one transaction, writing exactly the rows that
 * `PUT /v1/carrier/subscribers/{msisdn}` followed by a top-up write through the services:
 * the subscriber's ledger account (floor 0) and subscriber row, a `topup` journal transaction
 * with its two entries, the carrier-funding leg (a balance-delta row when that account is hot,
 * as insertJournal does), and the `subscriber.created` / `subscriber.topped_up` audit events.
 * The subscriber account's posted balance is set to the top-up, which is what applyToAccount
 * leaves. Not written: the top-ups' idempotency records (stored answers of requests never made).
 *
 * The carrier-funding account must exist already (one top-up through the API creates it).
 */
export async function bulkSubscribers(databaseUrl: string, b: BulkSubscribers): Promise<void> {
  const n = b.msisdns.length;
  const subs = Array.from({ length: n }, () => newId('sub'));
  const accounts = Array.from({ length: n }, () => newId('acc'));
  const txns = Array.from({ length: n }, () => newId('txn'));
  const topups = Array.from({ length: n }, () => newId('top'));
  const createdEvents = Array.from({ length: n }, () => newId('evt'));
  const toppedEvents = Array.from({ length: n }, () => newId('evt'));
  const createdSummaries = b.msisdns.map((m) =>
    JSON.stringify({
      msisdn: maskMsisdn(m),
      funding_type: 'prepaid',
      status: 'active',
      credit_limit: '0',
    }),
  );
  const toppedSummaries = b.msisdns.map((m, i) =>
    JSON.stringify({
      msisdn: maskMsisdn(m),
      amount: b.amount,
      currency: b.currency,
      reference: `bench-seed-${i}`,
      topup_id: topups[i],
    }),
  );

  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    const funding = await client.query<{ id: string; hot: boolean }>(
      `SELECT id, hot FROM ledger_accounts
        WHERE kind = 'carrier_funding' AND owner_id = $1 AND currency = $2`,
      [b.carrierId, b.currency],
    );
    const fundingAccount = funding.rows[0];
    if (!fundingAccount) throw new Error('The carrier has no funding account yet.');

    await client.query(
      `INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot, floor, posted)
       SELECT a, 'subscriber', s, $3, false, 0, $4::bigint FROM unnest($1::text[], $2::text[]) AS x(a, s)`,
      [accounts, subs, b.currency, b.amount],
    );
    await client.query(
      `INSERT INTO subscribers (id, carrier_id, msisdn, funding_type, status, credit_limit, account_id)
       SELECT s, $4, m, 'prepaid', 'active', 0, a FROM unnest($1::text[], $2::text[], $3::text[]) AS x(s, m, a)`,
      [subs, b.msisdns, accounts, b.carrierId],
    );
    await client.query(
      `INSERT INTO journal_transactions (id, kind, reference_id)
       SELECT t, 'topup', r FROM unnest($1::text[], $2::text[]) AS x(t, r)`,
      [txns, topups],
    );
    await client.query(
      `INSERT INTO journal_entries (transaction_id, account_id, amount, currency)
       SELECT t, leg.account_id, leg.amount, $4
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(t, a, i)
         CROSS JOIN LATERAL (VALUES (x.a, $3::bigint), ($5::text, -$3::bigint)) AS leg(account_id, amount)
        ORDER BY x.i`,
      [txns, accounts, b.amount, b.currency, fundingAccount.id],
    );
    if (fundingAccount.hot) {
      await client.query(
        `INSERT INTO ledger_balance_deltas (account_id, amount)
         SELECT $1, -$2::bigint FROM generate_series(1, $3)`,
        [fundingAccount.id, b.amount, n],
      );
    } else {
      await client.query(
        'UPDATE ledger_accounts SET posted = posted - $2::bigint * $3 WHERE id = $1',
        [fundingAccount.id, b.amount, n],
      );
    }
    await client.query(
      `INSERT INTO audit_events (id, actor_type, actor_id, api_key_id, actor_ip, action, object_type, object_id, request_id, summary)
       SELECT e, 'carrier', $4, $5, '127.0.0.1', act, 'subscriber', s, 'req_bench_seed_' || i, sm::jsonb
         FROM (
           SELECT c.e, 'subscriber.created' AS act, c.s, c.sm, c.i
             FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS c(e, s, sm, i)
           UNION ALL
           SELECT t.e, 'subscriber.topped_up', t.s, t.sm, t.i
             FROM unnest($6::text[], $2::text[], $7::text[]) WITH ORDINALITY AS t(e, s, sm, i)
         ) AS ev
        ORDER BY i, act`,
      [
        createdEvents,
        subs,
        createdSummaries,
        b.carrierId,
        b.carrierKeyId,
        toppedEvents,
        toppedSummaries,
      ],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}
