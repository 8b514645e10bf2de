import type { Queryable } from '../../db/pool.js';
import type { PortRow, PortStatus } from './ports-types.js';

export async function insertPort(
  db: Queryable,
  p: Pick<
    PortRow,
    | 'id'
    | 'msisdn'
    | 'gaining_carrier_id'
    | 'losing_carrier_id'
    | 'losing_subscriber_id'
    | 'funding_type'
  > & { effective_at: Date | null },
): Promise<PortRow> {
  // effective_at defaults to now (database time); one in the past means "as soon as accepted".
  const { rows } = await db.query<PortRow>(
    `INSERT INTO ports (id, msisdn, gaining_carrier_id, losing_carrier_id, losing_subscriber_id,
                        funding_type, status, effective_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'pending', greatest(coalesce($7::timestamptz, now()), now()))
     RETURNING *`,
    [
      p.id,
      p.msisdn,
      p.gaining_carrier_id,
      p.losing_carrier_id,
      p.losing_subscriber_id,
      p.funding_type,
      p.effective_at?.toISOString() ?? null,
    ],
  );
  return rows[0]!;
}

/**
 * Serialises port requests for one number for the rest of the transaction, so "no open port yet"
 * stays true until this one is inserted (ports_open_msisdn_idx would otherwise refuse it late).
 */
export async function lockNumberForPortRequest(db: Queryable, msisdn: string): Promise<void> {
  await db.query(`SELECT pg_advisory_xact_lock(hashtextextended('port:' || $1, 13))`, [msisdn]);
}

export async function findOpenPort(db: Queryable, msisdn: string): Promise<PortRow | undefined> {
  const { rows } = await db.query<PortRow>(
    `SELECT * FROM ports WHERE msisdn = $1 AND status IN ('pending', 'accepted')`,
    [msisdn],
  );
  return rows[0];
}

export async function findPort(
  db: Queryable,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<PortRow | undefined> {
  const { rows } = await db.query<PortRow>(
    `SELECT * FROM ports WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0];
}

/** Newest first; fetches `limit + 1` rows so the caller can tell whether more follow. */
export async function listPorts(
  db: Queryable,
  filter: {
    gainingCarrierId?: string;
    losingCarrierId?: string;
    status?: PortStatus;
    msisdn?: string;
    limit: number;
    startingAfter?: string;
  },
): Promise<PortRow[]> {
  const { rows } = await db.query<PortRow>(
    `SELECT * FROM ports
      WHERE ($1::text IS NULL OR gaining_carrier_id = $1)
        AND ($2::text IS NULL OR losing_carrier_id = $2)
        AND ($3::text IS NULL OR status = $3)
        AND ($4::text IS NULL OR msisdn = $4)
        AND ($5::text IS NULL OR id < $5)
      ORDER BY id DESC LIMIT $6`,
    [
      filter.gainingCarrierId ?? null,
      filter.losingCarrierId ?? null,
      filter.status ?? null,
      filter.msisdn ?? null,
      filter.startingAfter ?? null,
      filter.limit + 1,
    ],
  );
  return rows;
}

export async function updatePort(
  db: Queryable,
  id: string,
  change: {
    status: PortStatus;
    rejectionReason?: string;
    accepted?: boolean;
    closed?: boolean;
    gainingSubscriberId?: string;
    returnedBalance?: bigint;
    cancelledCharges?: number;
  },
): Promise<PortRow> {
  const { rows } = await db.query<PortRow>(
    `UPDATE ports SET status = $2,
            rejection_reason = coalesce($3, rejection_reason),
            accepted_at = CASE WHEN $4 THEN now() ELSE accepted_at END,
            closed_at = CASE WHEN $5 THEN now() ELSE closed_at END,
            gaining_subscriber_id = coalesce($6, gaining_subscriber_id),
            returned_balance = coalesce($7::bigint, returned_balance),
            cancelled_charges = coalesce($8::int, cancelled_charges),
            updated_at = now()
      WHERE id = $1 RETURNING *`,
    [
      id,
      change.status,
      change.rejectionReason ?? null,
      change.accepted ?? false,
      change.closed ?? false,
      change.gainingSubscriberId ?? null,
      change.returnedBalance?.toString() ?? null,
      change.cancelledCharges ?? null,
    ],
  );
  return rows[0]!;
}

/** One accepted port whose effective time has passed, locked for this worker (others skip it). */
export async function lockDuePort(db: Queryable): Promise<PortRow | undefined> {
  const { rows } = await db.query<PortRow>(
    `SELECT * FROM ports WHERE status = 'accepted' AND effective_at <= now()
      ORDER BY effective_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
  );
  return rows[0];
}

/**
 * Locks a subscriber record against changes by its carrier (FOR NO KEY UPDATE: charges may still
 * reference it, which takes only KEY SHARE).
 */
export async function lockSubscriberRecord(db: Queryable, subscriberId: string): Promise<void> {
  await db.query('SELECT 1 FROM subscribers WHERE id = $1 FOR NO KEY UPDATE', [subscriberId]);
}
