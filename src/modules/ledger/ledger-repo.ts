import type { Queryable } from '../../db/pool.js';
import type { AccountKind, JournalInput } from './ledger-types.js';

/** Returns the account's id, creating it if needed (safe under concurrency). */
export async function ensureAccount(
  db: Queryable,
  a: {
    id: string;
    kind: AccountKind;
    ownerId: string;
    currency: string;
    hot: boolean;
    floor: bigint | null;
  },
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `WITH ins AS (
       INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot, floor)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (kind, owner_id, currency) DO NOTHING
       RETURNING id)
     SELECT id FROM ins
     UNION ALL
     SELECT id FROM ledger_accounts WHERE kind = $2 AND owner_id = $3 AND currency = $4
     LIMIT 1`,
    [a.id, a.kind, a.ownerId, a.currency, a.hot, a.floor?.toString() ?? null],
  );
  if (rows[0]) return rows[0].id;
  // A concurrent insert won the race after this statement's snapshot: read it now.
  const again = await db.query<{ id: string }>(
    'SELECT id FROM ledger_accounts WHERE kind = $1 AND owner_id = $2 AND currency = $3',
    [a.kind, a.ownerId, a.currency],
  );
  return again.rows[0]!.id;
}

/**
 * Moves `delta` (signed) on a row-balance account. A decrease only applies while the available
 * balance stays at or above the floor; returns false when it would not (nothing changed).
 */
export async function applyToAccount(
  db: Queryable,
  accountId: string,
  delta: bigint,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE ledger_accounts SET posted = posted + $2::bigint
      WHERE id = $1 AND ($2::bigint >= 0 OR floor IS NULL OR posted - pending + $2::bigint >= floor)`,
    [accountId, delta.toString()],
  );
  return rowCount === 1;
}

/** Holds `amount` against the available balance within the floor; false when it does not fit. */
export async function insertHold(
  db: Queryable,
  holdId: string,
  accountId: string,
  amount: bigint,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `WITH a AS (
       UPDATE ledger_accounts SET pending = pending + $3
        WHERE id = $2 AND (floor IS NULL OR posted - pending - $3 >= floor)
        RETURNING id)
     INSERT INTO ledger_holds (id, account_id, amount, status) SELECT $1, id, $3, 'active' FROM a`,
    [holdId, accountId, amount.toString()],
  );
  return rowCount === 1;
}

/**
 * Ends an active hold: `postAmount` (≤ the hold) leaves the posted balance, the whole hold leaves
 * pending. Returns the held amount, or undefined when the hold is not active.
 */
export async function settleHold(
  db: Queryable,
  holdId: string,
  postAmount: bigint,
  status: 'posted' | 'released',
): Promise<bigint | undefined> {
  const { rows } = await db.query<{ amount: string }>(
    `WITH h AS (
       UPDATE ledger_holds SET status = $3, updated_at = now()
        WHERE id = $1 AND status = 'active' AND amount >= $2
        RETURNING account_id, amount)
     UPDATE ledger_accounts a SET pending = a.pending - h.amount, posted = a.posted - $2
       FROM h WHERE a.id = h.account_id
     RETURNING h.amount`,
    [holdId, postAmount.toString(), status],
  );
  return rows[0] ? BigInt(rows[0].amount) : undefined;
}

/** Appends the transaction, its entries, and delta rows for hot accounts, in one statement. */
export async function insertJournal(db: Queryable, j: JournalInput): Promise<void> {
  await db.query(
    `WITH t AS (
       INSERT INTO journal_transactions (id, kind, reference_id) VALUES ($1, $2, $3)),
     e AS (
       INSERT INTO journal_entries (transaction_id, account_id, amount, currency)
       SELECT $1, x.account_id, x.amount, $4
         FROM unnest($5::text[], $6::bigint[]) AS x(account_id, amount))
     INSERT INTO ledger_balance_deltas (account_id, amount)
     SELECT x.account_id, x.amount
       FROM unnest($5::text[], $6::bigint[], $7::boolean[]) AS x(account_id, amount, hot)
      WHERE x.hot`,
    [
      j.id,
      j.kind,
      j.referenceId,
      j.currency,
      j.legs.map((l) => l.account.id),
      j.legs.map((l) => l.amount.toString()),
      j.legs.map((l) => l.account.hot),
    ],
  );
}

/** Folds up to `batch` queued deltas into their accounts' posted balances; returns how many. */
export async function rollUpDeltas(db: Queryable, batch: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `WITH d AS (
       DELETE FROM ledger_balance_deltas
        WHERE id IN (SELECT id FROM ledger_balance_deltas ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING account_id, amount),
     s AS (SELECT account_id, sum(amount) AS total, count(*) AS n FROM d GROUP BY account_id),
     u AS (UPDATE ledger_accounts a SET posted = a.posted + s.total FROM s WHERE a.id = s.account_id RETURNING s.n)
     SELECT coalesce(sum(n), 0)::text AS n FROM u`,
    [batch],
  );
  return Number(rows[0]?.n ?? 0);
}

export interface BalanceRow {
  id: string;
  kind: AccountKind;
  owner_id: string;
  currency: string;
  posted: string;
  pending: string;
}

/** Current balances including not-yet-rolled-up deltas. */
export async function accountBalances(
  db: Queryable,
  filter: { kind: AccountKind; ownerId: string },
): Promise<BalanceRow[]> {
  const { rows } = await db.query<BalanceRow>(
    `SELECT a.id, a.kind, a.owner_id, a.currency,
            (a.posted + coalesce((SELECT sum(d.amount) FROM ledger_balance_deltas d WHERE d.account_id = a.id), 0))::text AS posted,
            a.pending::text AS pending
       FROM ledger_accounts a
      WHERE a.kind = $1 AND a.owner_id = $2
      ORDER BY a.currency`,
    [filter.kind, filter.ownerId],
  );
  return rows;
}

export interface VerifyFigures {
  accounts: number;
  transactions: number;
  entries: number;
  unbalanced_transactions: { transaction_id: string; currency: string; sum: string }[];
  account_mismatches: {
    account_id: string;
    kind: string;
    recorded: string;
    from_entries: string;
  }[];
  pending_mismatches: { account_id: string; recorded: string; from_holds: string }[];
  trial_balance: { currency: string; debits: string; credits: string; net: string }[];
}

/** Recomputes every balance from entries and checks the zero-sum per transaction and currency. */
export async function verifyFigures(db: Queryable, sampleLimit = 20): Promise<VerifyFigures> {
  const counts = await db.query<{ accounts: string; transactions: string; entries: string }>(
    `SELECT (SELECT count(*) FROM ledger_accounts)::text AS accounts,
            (SELECT count(*) FROM journal_transactions)::text AS transactions,
            (SELECT count(*) FROM journal_entries)::text AS entries`,
  );
  const unbalanced = await db.query<VerifyFigures['unbalanced_transactions'][number]>(
    `SELECT transaction_id, currency, sum(amount)::text AS sum
       FROM journal_entries GROUP BY transaction_id, currency HAVING sum(amount) <> 0 LIMIT $1`,
    [sampleLimit],
  );
  const accountMismatch = await db.query<VerifyFigures['account_mismatches'][number]>(
    `WITH e AS (SELECT account_id, sum(amount) AS total FROM journal_entries GROUP BY account_id),
          d AS (SELECT account_id, sum(amount) AS total FROM ledger_balance_deltas GROUP BY account_id)
     SELECT a.id AS account_id, a.kind,
            (a.posted + coalesce(d.total, 0))::text AS recorded, coalesce(e.total, 0)::text AS from_entries
       FROM ledger_accounts a
       LEFT JOIN e ON e.account_id = a.id
       LEFT JOIN d ON d.account_id = a.id
      WHERE a.posted + coalesce(d.total, 0) <> coalesce(e.total, 0)
      LIMIT $1`,
    [sampleLimit],
  );
  const pendingMismatch = await db.query<VerifyFigures['pending_mismatches'][number]>(
    `WITH h AS (SELECT account_id, sum(amount) AS total FROM ledger_holds WHERE status = 'active' GROUP BY account_id)
     SELECT a.id AS account_id, a.pending::text AS recorded, coalesce(h.total, 0)::text AS from_holds
       FROM ledger_accounts a LEFT JOIN h ON h.account_id = a.id
      WHERE a.pending <> coalesce(h.total, 0)
      LIMIT $1`,
    [sampleLimit],
  );
  const trial = await db.query<VerifyFigures['trial_balance'][number]>(
    `SELECT currency,
            sum(CASE WHEN amount > 0 THEN amount ELSE 0 END)::text AS debits,
            (-sum(CASE WHEN amount < 0 THEN amount ELSE 0 END))::text AS credits,
            sum(amount)::text AS net
       FROM journal_entries GROUP BY currency ORDER BY currency`,
  );
  const c = counts.rows[0]!;
  return {
    accounts: Number(c.accounts),
    transactions: Number(c.transactions),
    entries: Number(c.entries),
    unbalanced_transactions: unbalanced.rows,
    account_mismatches: accountMismatch.rows,
    pending_mismatches: pendingMismatch.rows,
    trial_balance: trial.rows,
  };
}

export async function setAccountFloor(
  db: Queryable,
  accountId: string,
  floor: bigint | null,
): Promise<void> {
  await db.query('UPDATE ledger_accounts SET floor = $2 WHERE id = $1', [
    accountId,
    floor?.toString() ?? null,
  ]);
}

export async function accountBalance(
  db: Queryable,
  accountId: string,
): Promise<{ posted: bigint; pending: bigint } | undefined> {
  const { rows } = await db.query<{ posted: string; pending: string }>(
    `SELECT (a.posted + coalesce((SELECT sum(d.amount) FROM ledger_balance_deltas d WHERE d.account_id = a.id), 0))::text AS posted,
            a.pending::text AS pending
       FROM ledger_accounts a WHERE a.id = $1`,
    [accountId],
  );
  const row = rows[0];
  return row ? { posted: BigInt(row.posted), pending: BigInt(row.pending) } : undefined;
}
