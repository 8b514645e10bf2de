import type { Queryable } from '../../db/pool.js';
import {
  type AdjustableKind,
  type AdjustmentDirection,
  type AdjustmentRow,
  type AdjustmentStatus,
} from './adjustments-types.js';

export async function accountIsHot(db: Queryable, accountId: string): Promise<boolean> {
  const { rows } = await db.query<{ hot: boolean }>(
    'SELECT hot FROM ledger_accounts WHERE id = $1',
    [accountId],
  );
  return rows[0]!.hot;
}

/** Available balance and floor of a row-balance account, as minor-unit strings (floor may be null). */
export async function accountHeadroom(
  db: Queryable,
  accountId: string,
): Promise<{ available: string; floor: string | null }> {
  const { rows } = await db.query<{ available: string; floor: string | null }>(
    'SELECT (posted - pending)::text AS available, floor::text AS floor FROM ledger_accounts WHERE id = $1',
    [accountId],
  );
  return rows[0]!;
}

export async function merchantExists(db: Queryable, id: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM merchants WHERE id = $1', [id]);
  return (rowCount ?? 0) > 0;
}

export async function findCarrierCurrency(db: Queryable, id: string): Promise<string | undefined> {
  const { rows } = await db.query<{ currency: string }>(
    'SELECT currency FROM carriers WHERE id = $1',
    [id],
  );
  return rows[0]?.currency;
}

export async function findSubscriberAccount(
  db: Queryable,
  carrierId: string,
  msisdn: string,
): Promise<{ account_id: string; currency: string } | undefined> {
  const { rows } = await db.query<{ account_id: string; currency: string }>(
    `SELECT s.account_id, a.currency
       FROM subscribers s JOIN ledger_accounts a ON a.id = s.account_id
      WHERE s.carrier_id = $1 AND s.msisdn = $2
      -- A number ported away and back has a ported_out record too: the live one is meant.
      ORDER BY s.status = 'ported_out', s.created_at DESC
      LIMIT 1`,
    [carrierId, msisdn],
  );
  return rows[0];
}

export async function insertAdjustment(
  db: Queryable,
  a: {
    id: string;
    accountId: string;
    kind: AdjustableKind;
    ownerId: string;
    msisdn: string | null;
    currency: string;
    amount: bigint;
    direction: AdjustmentDirection;
    reason: string;
    createdByKeyId: string;
    createdByOperator: string;
  },
): Promise<AdjustmentRow> {
  const { rows } = await db.query<AdjustmentRow>(
    `INSERT INTO adjustments (id, account_id, account_kind, owner_id, msisdn, currency, amount,
                              direction, reason, status, created_by_key_id, created_by_operator)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending_approval', $10, $11)
     RETURNING *`,
    [
      a.id,
      a.accountId,
      a.kind,
      a.ownerId,
      a.msisdn,
      a.currency,
      a.amount.toString(),
      a.direction,
      a.reason,
      a.createdByKeyId,
      a.createdByOperator,
    ],
  );
  return rows[0]!;
}

export async function findAdjustment(
  db: Queryable,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<AdjustmentRow | undefined> {
  const { rows } = await db.query<AdjustmentRow>(
    `SELECT * FROM adjustments WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

export async function decideAdjustment(
  db: Queryable,
  id: string,
  decision: {
    status: Exclude<AdjustmentStatus, 'pending_approval'>;
    keyId: string;
    operatorId: string;
    reason?: string;
  },
): Promise<AdjustmentRow> {
  const { rows } = await db.query<AdjustmentRow>(
    `UPDATE adjustments
        SET status = $2, decided_by_key_id = $3, decided_by_operator = $4, rejection_reason = $5,
            decided_at = now()
      WHERE id = $1 AND status = 'pending_approval'
      RETURNING *`,
    [id, decision.status, decision.keyId, decision.operatorId, decision.reason ?? null],
  );
  return rows[0]!;
}

/** Newest first; fetches limit + 1 rows so the caller can tell has_more. */
export async function listAdjustments(
  db: Queryable,
  f: { status?: AdjustmentStatus; limit: number; startingAfter?: string },
): Promise<AdjustmentRow[]> {
  const { rows } = await db.query<AdjustmentRow>(
    `SELECT * FROM adjustments
      WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR id < $2)
      ORDER BY id DESC LIMIT $3`,
    [f.status ?? null, f.startingAfter ?? null, f.limit + 1],
  );
  return rows;
}
