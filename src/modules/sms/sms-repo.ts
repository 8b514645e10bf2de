import type { Queryable } from '../../db/pool.js';
import type { SmsRow } from './sms-types.js';

/** Queues a message in the caller's transaction; it is sent only after that transaction commits. */
export async function insertSms(
  db: Queryable,
  sms: {
    id: string;
    chargeId: string | null;
    carrierId: string;
    msisdn: string;
    message: string;
    validSeconds: number;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO sms_outbox (id, charge_id, carrier_id, msisdn, message, expires_at)
     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::int))`,
    [sms.id, sms.chargeId, sms.carrierId, sms.msisdn, sms.message, sms.validSeconds],
  );
}

export interface DueSms {
  id: string;
  carrier_id: string;
  msisdn: string;
  message: string | null;
  attempts: number;
  sms_url: string | null;
  /** Past its expiry, or its charge no longer awaits the code: sending it would only confuse. */
  stale: boolean;
}

/** Due messages (and expired leases), locked for this worker and skipped by others. */
export async function lockDueSms(
  db: Queryable,
  options: { limit: number; carrierIds?: readonly string[] },
): Promise<DueSms[]> {
  const { rows } = await db.query<DueSms>(
    `SELECT s.id, s.carrier_id, s.msisdn, s.message, s.attempts, car.sms_url,
            (s.expires_at <= now() OR coalesce(ch.status <> 'pending_validation', false)) AS stale
       FROM sms_outbox s
       JOIN carriers car ON car.id = s.carrier_id
       LEFT JOIN charges ch ON ch.id = s.charge_id
      WHERE s.status IN ('pending', 'delivering') AND s.next_attempt_at <= now()
        AND ($2::text[] IS NULL OR s.carrier_id = ANY($2))
      ORDER BY s.next_attempt_at
      LIMIT $1
      FOR UPDATE OF s SKIP LOCKED`,
    [options.limit, options.carrierIds ?? null],
  );
  return rows;
}

/**
 * Ends messages without sending them (expired or undeliverable). Their text is erased: it is
 * never needed again.
 */
export async function closeSms(
  db: Queryable,
  ids: readonly string[],
  status: 'expired' | 'failed',
  error: string | null,
): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE sms_outbox SET status = $2, message = NULL, next_attempt_at = NULL, lease_id = NULL,
            last_error = coalesce($3, last_error)
      WHERE id = ANY($1)`,
    [ids, status, error],
  );
}

/** The sandbox sink: delivered at once, the text kept for the sandbox SMS inbox. */
export async function deliverToSandbox(db: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE sms_outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = now(),
            next_attempt_at = NULL, lease_id = NULL
      WHERE id = ANY($1)`,
    [ids],
  );
}

/** Claims messages for one delivery attempt until the lease ends (then another worker may retry). */
export async function leaseSms(
  db: Queryable,
  ids: readonly string[],
  leaseId: string,
  leaseMs: number,
): Promise<void> {
  if (ids.length === 0) return;
  await db.query(
    `UPDATE sms_outbox SET status = 'delivering', lease_id = $2,
            next_attempt_at = now() + make_interval(secs => $3::double precision / 1000)
      WHERE id = ANY($1)`,
    [ids, leaseId, leaseMs],
  );
}

export type SmsAttemptOutcome =
  { status: 'delivered' } | { status: 'failed' } | { status: 'pending'; retryInMs: number };

/**
 * Records one attempt, if this worker still holds the lease. The text is erased once the message
 * is delivered or failed. Returns false when the lease was lost (another worker took over).
 */
export async function recordSmsAttempt(
  db: Queryable,
  id: string,
  leaseId: string,
  attempt: { httpStatus: number | null; error: string | null },
  outcome: SmsAttemptOutcome,
): Promise<boolean> {
  const retryInMs = outcome.status === 'pending' ? outcome.retryInMs : null;
  const { rowCount } = await db.query(
    `UPDATE sms_outbox SET status = $3, attempts = attempts + 1, lease_id = NULL,
            last_status = $4, last_error = $5,
            message = CASE WHEN $3 = 'pending' THEN message END,
            delivered_at = CASE WHEN $3 = 'delivered' THEN now() END,
            next_attempt_at = CASE WHEN $3 = 'pending'
                                   THEN now() + make_interval(secs => $6::double precision / 1000) END
      WHERE id = $1 AND lease_id = $2 AND status = 'delivering'`,
    [id, leaseId, outcome.status, attempt.httpStatus, attempt.error, retryInMs],
  );
  return rowCount === 1;
}

/** Whose messages a reader may see: a merchant's charges, a carrier's numbers, or everyone's. */
export type SmsReader = { merchantId: string } | { carrierId: string } | 'all';

/**
 * Delivered messages to one number that `reader` may see, newest first (the sandbox SMS inbox);
 * `limit + 1` rows. A merchant sees the messages of its own charges, a carrier the messages it
 * carried (sent while it held the number).
 */
export async function listDeliveredSms(
  db: Queryable,
  f: { msisdn: string; reader: SmsReader; limit: number; startingAfter?: string },
): Promise<(SmsRow & { carrier_code: string })[]> {
  const merchantId = f.reader !== 'all' && 'merchantId' in f.reader ? f.reader.merchantId : null;
  const carrierId = f.reader !== 'all' && 'carrierId' in f.reader ? f.reader.carrierId : null;
  const { rows } = await db.query<SmsRow & { carrier_code: string }>(
    `SELECT s.*, car.code AS carrier_code
       FROM sms_outbox s JOIN carriers car ON car.id = s.carrier_id
       LEFT JOIN charges ch ON ch.id = s.charge_id
      WHERE s.msisdn = $1 AND s.status = 'delivered' AND s.message IS NOT NULL
        AND ($2::text IS NULL OR s.id < $2)
        AND ($4::text IS NULL OR ch.merchant_id = $4)
        AND ($5::text IS NULL OR s.carrier_id = $5)
      ORDER BY s.id DESC
      LIMIT $3`,
    [f.msisdn, f.startingAfter ?? null, f.limit + 1, merchantId, carrierId],
  );
  return rows;
}
