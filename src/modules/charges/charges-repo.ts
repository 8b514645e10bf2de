import type { Queryable } from '../../db/pool.js';
import type { CarrierRow } from '../carriers/carriers-types.js';
import type { MerchantRow } from '../merchants/merchants-types.js';
import type { SubscriberRow } from '../subscribers/subscribers-types.js';
import type { AuditEventColumns } from '../audit/audit-repo.js';
import type { EventColumns } from '../events/events-repo.js';
import type { StoredResponse } from '../idempotency/idempotency-repo.js';
import type { DebitJournal } from '../ledger/ledger-types.js';
import type { ChargeRow, ChargeStatus, DenialCode } from './charges-types.js';

const CHARGE_COLUMNS = `ch.*, car.code AS carrier_code`;
const FROM_CHARGES = `charges ch JOIN carriers car ON car.id = ch.carrier_id`;

/**
 * What a charge attempt needs before anything is written, in one round trip: the merchant, the
 * number's one holder (subscribers_msisdn_holder_idx) with its carrier, and the answer already stored under the request's key, if any (a
 * stored answer never changes, so it may be read outside the transaction that would write one).
 * Named, like executeOneStepCharge: planned once per connection rather than on every charge.
 */
export async function loadChargeAttempt(
  db: Queryable,
  merchantId: string,
  msisdn: string,
  request: { ownerId: string; key: string },
): Promise<{
  merchant?: MerchantRow;
  subscriber?: SubscriberRow;
  carrier?: CarrierRow;
  stored?: StoredResponse;
}> {
  // A stored answer is all a replay needs: the parties are read only when there is none.
  const { rows } = await db.query<
    {
      merchant: MerchantRow | null;
      subscriber: SubscriberRow | null;
      carrier: CarrierRow | null;
    } & { [K in keyof StoredResponse]: StoredResponse[K] | null }
  >({
    name: 'charges-load-attempt',
    text: `SELECT k.fingerprint, k.response_status, k.content_type, k.response_body,
            CASE WHEN k.key IS NULL THEN to_jsonb(m) END AS merchant,
            CASE WHEN k.key IS NULL THEN to_jsonb(s) END AS subscriber,
            CASE WHEN k.key IS NULL THEN to_jsonb(c) END AS carrier
       FROM (SELECT 1) one
       LEFT JOIN idempotency_keys k ON k.owner_id = $3 AND k.key = $4
       LEFT JOIN merchants m ON m.id = $1
       LEFT JOIN LATERAL (
         SELECT * FROM subscribers WHERE msisdn = $2 AND status <> 'ported_out'
       ) s ON true
       LEFT JOIN carriers c ON c.id = s.carrier_id`,
    values: [merchantId, msisdn, request.ownerId, request.key],
  });
  const row = rows[0]!;
  if (row.fingerprint !== null) {
    return {
      stored: {
        fingerprint: row.fingerprint,
        response_status: row.response_status!,
        content_type: row.content_type!,
        response_body: row.response_body!,
      },
    };
  }
  return {
    merchant: row.merchant ?? undefined,
    subscriber: row.subscriber ?? undefined,
    carrier: row.carrier ?? undefined,
  };
}

export interface NewCharge {
  id: string;
  merchant_id: string;
  carrier_id: string;
  subscriber_id: string;
  msisdn: string;
  funding_type: string;
  status: ChargeStatus;
  capture: boolean;
  amount: bigint;
  currency: string;
  amount_held: bigint;
  amount_captured: bigint;
  revenue_share_bps: number;
  fee_bps: number;
  carrier_share: bigint | null;
  gateway_fee: bigint | null;
  merchant_net: bigint | null;
  description: string;
  merchant_reference: string | null;
  metadata: Record<string, string> | null;
  denial_code: DenialCode | null;
  reserved_until_seconds: number | null;
}

/**
 * The row of a new charge as the database stores it, dated `at`, for a statement that writes it
 * together with other rows (executeOneStepCharge). Only for charges without a reservation expiry.
 */
export function newChargeRow(
  c: Omit<NewCharge, 'reserved_until_seconds'>,
  carrierCode: string,
  at: Date,
): ChargeRow {
  const text = (v: bigint | null) => (v === null ? null : v.toString());
  return {
    ...c,
    carrier_code: carrierCode,
    funding_type: c.funding_type as ChargeRow['funding_type'],
    amount: c.amount.toString(),
    amount_held: c.amount_held.toString(),
    amount_captured: c.amount_captured.toString(),
    amount_refunded: '0',
    carrier_share: text(c.carrier_share),
    gateway_fee: text(c.gateway_fee),
    merchant_net: text(c.merchant_net),
    refunded_carrier_share: '0',
    refunded_gateway_fee: '0',
    refunded_merchant_net: '0',
    cancellation_reason: null,
    reserved_until: null,
    created_at: at,
    updated_at: at,
    captured_at: c.status === 'succeeded' ? at : null,
  };
}

export async function insertCharge(db: Queryable, c: NewCharge): Promise<ChargeRow> {
  const { rows } = await db.query<ChargeRow>(
    `WITH ins AS (
       INSERT INTO charges (id, merchant_id, carrier_id, subscriber_id, msisdn, funding_type, status, capture, amount, currency,
                            amount_held, amount_captured, revenue_share_bps, fee_bps, carrier_share, gateway_fee, merchant_net,
                            description, merchant_reference, metadata, denial_code, reserved_until, captured_at)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,
               CASE WHEN $22::int IS NULL THEN NULL ELSE now() + make_interval(secs => $22::int) END,
               CASE WHEN $7 = 'succeeded' THEN now() END)
       RETURNING *)
     SELECT ins.*, car.code AS carrier_code FROM ins JOIN carriers car ON car.id = ins.carrier_id`,
    [
      c.id,
      c.merchant_id,
      c.carrier_id,
      c.subscriber_id,
      c.msisdn,
      c.funding_type,
      c.status,
      c.capture,
      c.amount.toString(),
      c.currency,
      c.amount_held.toString(),
      c.amount_captured.toString(),
      c.revenue_share_bps,
      c.fee_bps,
      c.carrier_share?.toString() ?? null,
      c.gateway_fee?.toString() ?? null,
      c.merchant_net?.toString() ?? null,
      c.description,
      c.merchant_reference,
      c.metadata === null ? null : JSON.stringify(c.metadata),
      c.denial_code,
      c.reserved_until_seconds,
    ],
  );
  return rows[0]!;
}

export async function findCharge(
  db: Queryable,
  id: string,
  scope: { merchantId?: string; forUpdate?: boolean } = {},
): Promise<ChargeRow | undefined> {
  const { rows } = await db.query<ChargeRow>(
    `SELECT ${CHARGE_COLUMNS} FROM ${FROM_CHARGES}
      WHERE ch.id = $1 AND ($2::text IS NULL OR ch.merchant_id = $2)${scope.forUpdate ? ' FOR UPDATE OF ch' : ''}`,
    [id, scope.merchantId ?? null],
  );
  return rows[0];
}

export async function updateChargeState(
  db: Queryable,
  id: string,
  change: {
    status: ChargeStatus;
    amount_held?: bigint;
    amount_captured?: bigint;
    split?: { carrierShare: bigint; gatewayFee: bigint; merchantNet: bigint };
    denial_code?: DenialCode;
    cancellation_reason?: string;
    captured?: boolean;
    /** Sets reserved_until to now (database time) plus this many seconds. */
    reserved_until_seconds?: number;
  },
): Promise<ChargeRow> {
  const { rows } = await db.query<ChargeRow>(
    `WITH u AS (
       UPDATE charges SET status = $2,
              amount_held = coalesce($3, amount_held),
              amount_captured = coalesce($4, amount_captured),
              carrier_share = coalesce($5, carrier_share),
              gateway_fee = coalesce($6, gateway_fee),
              merchant_net = coalesce($7, merchant_net),
              denial_code = coalesce($8, denial_code),
              cancellation_reason = coalesce($9, cancellation_reason),
              captured_at = CASE WHEN $10 THEN now() ELSE captured_at END,
              reserved_until = CASE WHEN $11::int IS NULL THEN reserved_until
                                    ELSE now() + make_interval(secs => $11::int) END,
              updated_at = now()
        WHERE id = $1 RETURNING *)
     SELECT u.*, car.code AS carrier_code FROM u JOIN carriers car ON car.id = u.carrier_id`,
    [
      id,
      change.status,
      change.amount_held?.toString() ?? null,
      change.amount_captured?.toString() ?? null,
      change.split?.carrierShare.toString() ?? null,
      change.split?.gatewayFee.toString() ?? null,
      change.split?.merchantNet.toString() ?? null,
      change.denial_code ?? null,
      change.cancellation_reason ?? null,
      change.captured ?? false,
      change.reserved_until_seconds ?? null,
    ],
  );
  return rows[0]!;
}

export async function addChargeRefund(
  db: Queryable,
  id: string,
  refund: { amount: bigint; carrierShare: bigint; gatewayFee: bigint; merchantNet: bigint },
): Promise<ChargeRow> {
  const { rows } = await db.query<ChargeRow>(
    `WITH u AS (
       UPDATE charges SET amount_refunded = amount_refunded + $2,
              refunded_carrier_share = refunded_carrier_share + $3,
              refunded_gateway_fee = refunded_gateway_fee + $4,
              refunded_merchant_net = refunded_merchant_net + $5,
              updated_at = now()
        WHERE id = $1 RETURNING *)
     SELECT u.*, car.code AS carrier_code FROM u JOIN carriers car ON car.id = u.carrier_id`,
    [
      id,
      refund.amount.toString(),
      refund.carrierShare.toString(),
      refund.gatewayFee.toString(),
      refund.merchantNet.toString(),
    ],
  );
  return rows[0]!;
}

/** Reservations past their expiry, locked for this sweeper and skipped by others. */
export async function lockExpiredReservations(db: Queryable, batch: number): Promise<ChargeRow[]> {
  const { rows } = await db.query<ChargeRow>(
    `SELECT ${CHARGE_COLUMNS} FROM ${FROM_CHARGES}
      WHERE ch.status = 'reserved' AND ch.reserved_until <= now()
      ORDER BY ch.reserved_until LIMIT $1
      FOR UPDATE OF ch SKIP LOCKED`,
    [batch],
  );
  return rows;
}

/**
 * A subscriber's charges that hold money (reservations, pending consents), row-locked; with
 * `noWait`, fails at once (55P03) instead of waiting for a charge another transaction holds.
 */
export async function lockOpenChargesOf(
  db: Queryable,
  subscriberId: string,
  options: { except?: string[]; noWait?: boolean } = {},
): Promise<ChargeRow[]> {
  const { rows } = await db.query<ChargeRow>(
    `SELECT ${CHARGE_COLUMNS} FROM ${FROM_CHARGES}
      WHERE ch.subscriber_id = $1 AND ch.status IN ('reserved', 'pending_validation')
        AND NOT (ch.id = ANY($2::text[]))
      ORDER BY ch.id
      FOR UPDATE OF ch${options.noWait ? ' NOWAIT' : ''}`,
    [subscriberId, options.except ?? []],
  );
  return rows;
}

/** Pending consents whose code has expired (database time), locked for this sweeper. */
export async function lockExpiredConsents(db: Queryable, batch: number): Promise<ChargeRow[]> {
  const { rows } = await db.query<ChargeRow>(
    `SELECT ${CHARGE_COLUMNS}
       FROM charge_otps o JOIN charges ch ON ch.id = o.charge_id JOIN carriers car ON car.id = ch.carrier_id
      WHERE o.expires_at <= now() AND ch.status = 'pending_validation'
      ORDER BY o.expires_at LIMIT $1
      FOR UPDATE OF ch SKIP LOCKED`,
    [batch],
  );
  return rows;
}

/**
 * Serialises the limit check of one subscriber's charges: whoever holds this lock sees every
 * earlier charge of the subscriber committed before computing spend. The same row is written by
 * the hold or posting that follows, so this only takes that lock a little earlier.
 */
/**
 * The daily or monthly cap a new charge of `amount` would pass, or null (spend_cap_exceeded,
 * migration 0011: the one rule the one-step statement uses too). Call it holding the subscriber's
 * account lock.
 */
export async function spendCapExceeded(
  db: Queryable,
  c: {
    subscriberId: string;
    timezone: string;
    amount: bigint;
    dailyMax: bigint | null;
    monthlyMax: bigint | null;
  },
): Promise<'limit_daily_exceeded' | 'limit_monthly_exceeded' | null> {
  const { rows } = await db.query<{
    code: 'limit_daily_exceeded' | 'limit_monthly_exceeded' | null;
  }>('SELECT spend_cap_exceeded($1, $2, $3::bigint, $4::bigint, $5::bigint) AS code', [
    c.subscriberId,
    c.timezone,
    c.amount.toString(),
    c.dailyMax?.toString() ?? null,
    c.monthlyMax?.toString() ?? null,
  ]);
  return rows[0]!.code;
}

export async function lockSubscriberAccount(db: Queryable, accountId: string): Promise<void> {
  await db.query('SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE', [accountId]);
}

/** Marks a ported_out record's account closed: the one-step statement debits it no more. */
export async function closeSubscriberAccount(db: Queryable, accountId: string): Promise<void> {
  await db.query('UPDATE ledger_accounts SET closed_at = now() WHERE id = $1', [accountId]);
}

export async function insertOtp(
  db: Queryable,
  chargeId: string,
  codeHash: Buffer,
  validSeconds: number,
): Promise<void> {
  await db.query(
    `INSERT INTO charge_otps (charge_id, code_hash, expires_at)
     VALUES ($1, $2, now() + make_interval(secs => $3::int))`,
    [chargeId, codeHash, validSeconds],
  );
}

export interface OtpRow {
  code_hash: Buffer;
  attempts: number;
  /** Judged by database time, like every other expiry. */
  expired: boolean;
}

export async function findOtp(db: Queryable, chargeId: string): Promise<OtpRow | undefined> {
  const { rows } = await db.query<OtpRow>(
    `SELECT code_hash, attempts, expires_at <= now() AS expired FROM charge_otps WHERE charge_id = $1`,
    [chargeId],
  );
  return rows[0];
}

/** Counts a wrong code; returns the attempts made so far. */
export async function recordOtpFailure(db: Queryable, chargeId: string): Promise<number> {
  const { rows } = await db.query<{ attempts: number }>(
    'UPDATE charge_otps SET attempts = attempts + 1 WHERE charge_id = $1 RETURNING attempts',
    [chargeId],
  );
  return rows[0]!.attempts;
}

/** How many wrong codes a number may have within a window (SPEC §10; OTP_MSISDN_* config). */
export interface NumberOtpPolicy {
  maxFailures: number;
  windowSeconds: number;
}

export interface NumberOtpState {
  /** Wrong codes of the number inside the window. */
  failures: number;
  /** When the number is locked: until the oldest counted wrong code leaves the window. */
  locked_until: Date | null;
}

/**
 * Takes the lock of the number's wrong-code row, creating it on first use, and forgets wrong codes
 * that left the window (otp_number_locked_until, migration 0015, is the rule). Call it holding the
 * charge's lock: every confirm locks charge then number, so concurrent confirms on many charges of
 * one number queue here, without deadlock, and each sees the wrong codes of those before it.
 */
export async function lockNumberOtpFailures(
  db: Queryable,
  msisdn: string,
  policy: NumberOtpPolicy,
): Promise<NumberOtpState> {
  const { rows } = await db.query<NumberOtpState>(
    `INSERT INTO otp_number_failures AS f (msisdn) VALUES ($1)
     ON CONFLICT (msisdn) DO UPDATE SET failed_at = otp_failures_in_window(f.failed_at, $2)
     RETURNING cardinality(failed_at) AS failures,
               otp_number_locked_until(failed_at, $2, $3) AS locked_until`,
    [msisdn, policy.windowSeconds, policy.maxFailures],
  );
  return rows[0]!;
}

/** Counts a wrong code against the number; call it holding the row (lockNumberOtpFailures). */
export async function recordNumberOtpFailure(
  db: Queryable,
  msisdn: string,
  policy: NumberOtpPolicy,
): Promise<NumberOtpState> {
  const { rows } = await db.query<NumberOtpState>(
    `UPDATE otp_number_failures SET failed_at = failed_at || now(), updated_at = now()
      WHERE msisdn = $1
     RETURNING cardinality(failed_at) AS failures,
               otp_number_locked_until(failed_at, $2, $3) AS locked_until`,
    [msisdn, policy.windowSeconds, policy.maxFailures],
  );
  return rows[0]!;
}

/** Until when the number is locked, or null; a read without the row lock (charge creation). */
export async function numberOtpLockedUntil(
  db: Queryable,
  msisdn: string,
  policy: NumberOtpPolicy,
): Promise<Date | null> {
  const { rows } = await db.query<{ locked_until: Date | null }>(
    `SELECT otp_number_locked_until(failed_at, $2, $3) AS locked_until
       FROM otp_number_failures WHERE msisdn = $1`,
    [msisdn, policy.windowSeconds, policy.maxFailures],
  );
  return rows[0]?.locked_until ?? null;
}

/**
 * Deletes rows of numbers whose last wrong code left the window (nothing left to count); rows a
 * confirm holds are skipped. Returns how many went.
 */
export async function deleteQuietNumberOtpFailures(
  db: Queryable,
  windowSeconds: number,
  batch: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM otp_number_failures WHERE msisdn IN (
       SELECT msisdn FROM otp_number_failures
        WHERE updated_at < now() - make_interval(secs => $1::int)
        LIMIT $2 FOR UPDATE SKIP LOCKED)`,
    [windowSeconds, batch],
  );
  return rowCount ?? 0;
}

/** The code is no longer needed once the charge leaves pending_validation. */
export async function deleteOtp(db: Queryable, chargeId: string): Promise<void> {
  await db.query('DELETE FROM charge_otps WHERE charge_id = $1', [chargeId]);
}

/** The charged subscriber's ledger account and its status as it is now. */
export async function findChargeSubscriber(
  db: Queryable,
  subscriberId: string,
): Promise<Pick<SubscriberRow, 'account_id' | 'status' | 'funding_type'>> {
  const { rows } = await db.query<Pick<SubscriberRow, 'account_id' | 'status' | 'funding_type'>>(
    'SELECT account_id, status, funding_type FROM subscribers WHERE id = $1',
    [subscriberId],
  );
  return rows[0]!;
}

/** One way a one-step charge can end, written whole: the charge, its records and its answer. */
export interface OneStepRecord {
  charge: ChargeRow;
  auditEvent: AuditEventColumns;
  event: EventColumns;
  response: { status: number; contentType: string; body: string };
}

export type OneStepResult =
  | { outcome: 'in_progress' }
  | { outcome: 'stored'; stored: StoredResponse }
  | { outcome: 'below_floor' }
  | { outcome: 'limit_daily_exceeded' }
  | { outcome: 'limit_monthly_exceeded' }
  | { outcome: 'stale' }
  | { outcome: 'ported' }
  | { outcome: 'recorded' };

/** The carrier's daily and monthly caps for the subscriber, counted by the one-step statement. */
export interface OneStepSpendCaps {
  subscriberId: string;
  timezone: string;
  dailyMax: bigint | null;
  monthlyMax: bigint | null;
}

/**
 * Executes a one-step charge in one statement (migrations 0009 and 0011, execute_one_step_charge).
 * Under the request key's advisory lock, unless the key already has an answer: with a journal,
 * debits the subscriber within its floor, posts the journal and writes the record (a success), or
 * writes nothing when the debit does not fit ('below_floor'), would pass a spend cap
 * ('limit_daily_exceeded', 'limit_monthly_exceeded'), or was stamped longer than
 * charge_stamp_tolerance() before the statement began ('stale'), or when a port completion made
 * the subscriber ported_out before the account lock was had ('ported'); without one, writes the record
 * (a denial).
 * Run it on the pool, not inside a transaction: the statement is the transaction.
 */
export async function executeOneStepCharge(
  db: Queryable,
  c: {
    request: { ownerId: string; key: string; fingerprint: string; method: string; path: string };
    journal: DebitJournal | null;
    record: OneStepRecord;
    /** Only with a journal, and only when the carrier caps the subscriber's spend. */
    spendCaps?: OneStepSpendCaps;
  },
): Promise<OneStepResult> {
  const { request: r, journal: j, record, spendCaps: caps } = c;
  const { rows } = await db.query<{ outcome: string } & Partial<StoredResponse>>({
    name: 'charges-execute-one-step',
    text: `SELECT outcome, fingerprint, response_status, content_type, response_body
             FROM execute_one_step_charge($1, $2, $3, $4, $5, $6, $7::bigint, $8, $9)`,
    values: [
      r.ownerId,
      r.key,
      r.fingerprint,
      r.method,
      r.path,
      j?.debit.accountId ?? null,
      j?.debit.amount.toString() ?? null,
      j === null
        ? null
        : JSON.stringify({
            id: j.id,
            kind: j.kind,
            reference_id: j.referenceId,
            currency: j.currency,
            legs: j.legs.map((l) => ({
              account_id: l.account.id,
              amount: l.amount.toString(),
              hot: l.account.hot,
            })),
          }),
      JSON.stringify({
        charge: record.charge,
        audit_event: record.auditEvent,
        event: record.event,
        response: {
          status: record.response.status,
          content_type: record.response.contentType,
          body: record.response.body,
        },
        ...(caps
          ? {
              spend_caps: {
                subscriber_id: caps.subscriberId,
                timezone: caps.timezone,
                daily_max: caps.dailyMax?.toString() ?? null,
                monthly_max: caps.monthlyMax?.toString() ?? null,
              },
            }
          : {}),
      }),
    ],
  });
  const row = rows[0]!;
  switch (row.outcome) {
    case 'stored':
      return {
        outcome: 'stored',
        stored: {
          fingerprint: row.fingerprint!,
          response_status: row.response_status!,
          content_type: row.content_type!,
          response_body: row.response_body!,
        },
      };
    case 'in_progress':
    case 'below_floor':
    case 'limit_daily_exceeded':
    case 'limit_monthly_exceeded':
    case 'stale':
    case 'ported':
    case 'recorded':
      return { outcome: row.outcome };
    default:
      throw new Error(`execute_one_step_charge answered ${row.outcome}`);
  }
}
