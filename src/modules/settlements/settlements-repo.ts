import type { Queryable } from '../../db/pool.js';
import type { LineRow, StatementRow, StatementStatus } from './settlements-types.js';

const STATEMENT_COLUMNS = `s.id, s.carrier_id, car.code AS carrier_code, s.business_date::text AS business_date,
  s.timezone, s.currency, s.period_start, s.period_end, s.status,
  s.charge_count::text, s.refund_count::text, s.gross::text, s.refunds::text, s.carrier_share::text,
  s.gateway_fee::text, s.merchant_net::text, s.owed_to_gateway::text,
  s.closed_at, s.settled_at, s.payment_reference, s.created_at, s.updated_at`;

/**
 * A carrier's captured charges and refunds stamped in [$2, $3) ($1 = carrier id). A charge counts
 * when it was captured, a refund when it was created. With `unassignedOnly`, rows a statement
 * already holds are left out; the close instead lets ON CONFLICT skip them (an anti-join against
 * the table being filled would rescan its growing heap for every row).
 */
function itemsStamped(unassignedOnly: boolean): string {
  const skip = (col: string) =>
    unassignedOnly
      ? `AND NOT EXISTS (SELECT 1 FROM settlement_items si WHERE si.item_id = ${col})`
      : '';
  return `
  SELECT 'charge' AS item_type, c.id AS item_id, c.merchant_id, c.amount_captured AS amount,
         c.carrier_share, c.gateway_fee, c.merchant_net
    FROM charges c
   WHERE c.carrier_id = $1 AND c.captured_at IS NOT NULL
     AND c.captured_at >= $2::timestamptz AND c.captured_at < $3::timestamptz ${skip('c.id')}
  UNION ALL
  SELECT 'refund', r.id, r.merchant_id, r.amount, r.carrier_share, r.gateway_fee, r.merchant_net
    FROM refunds r JOIN charges c ON c.id = r.charge_id
   WHERE c.carrier_id = $1
     AND r.created_at >= $2::timestamptz AND r.created_at < $3::timestamptz ${skip('r.id')}`;
}

/** Per-merchant figures of a set of items (`i`); shares, fees and nets are net of refunds. */
const LINE_AGGREGATE = `
  SELECT i.merchant_id, m.name AS merchant_name,
         count(*) FILTER (WHERE i.item_type = 'charge')::text AS charge_count,
         coalesce(sum(i.amount) FILTER (WHERE i.item_type = 'charge'), 0)::text AS gross,
         count(*) FILTER (WHERE i.item_type = 'refund')::text AS refund_count,
         coalesce(sum(i.amount) FILTER (WHERE i.item_type = 'refund'), 0)::text AS refunds,
         sum(CASE WHEN i.item_type = 'charge' THEN i.carrier_share ELSE -i.carrier_share END)::text AS carrier_share,
         sum(CASE WHEN i.item_type = 'charge' THEN i.gateway_fee ELSE -i.gateway_fee END)::text AS gateway_fee,
         sum(CASE WHEN i.item_type = 'charge' THEN i.merchant_net ELSE -i.merchant_net END)::text AS merchant_net,
         (coalesce(sum(i.amount) FILTER (WHERE i.item_type = 'charge'), 0)
          - coalesce(sum(i.amount) FILTER (WHERE i.item_type = 'refund'), 0)
          - sum(CASE WHEN i.item_type = 'charge' THEN i.carrier_share ELSE -i.carrier_share END))::text AS owed_to_gateway
    FROM items i JOIN merchants m ON m.id = i.merchant_id
   GROUP BY i.merchant_id, m.name`;

export interface MissingStatement {
  carrier_id: string;
  business_date: string;
}

/**
 * Local days, up to each carrier's local today, that have no statement yet: from the day after
 * its latest statement (or the day it was onboarded) on.
 */
export async function missingStatementDays(
  db: Queryable,
  limit: number,
): Promise<MissingStatement[]> {
  const { rows } = await db.query<MissingStatement>(
    `SELECT c.id AS carrier_id, d::date::text AS business_date
       FROM carriers c
       LEFT JOIN LATERAL (SELECT max(s.business_date) AS last FROM settlement_statements s
                           WHERE s.carrier_id = c.id) l ON true
      CROSS JOIN LATERAL generate_series(
              coalesce(l.last + 1, (c.created_at AT TIME ZONE c.timezone)::date)::timestamp,
              (now() AT TIME ZONE c.timezone)::date::timestamp,
              interval '1 day') AS d
      ORDER BY d, c.id
      LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Opens statements (carrier id, local date); the period is that day in the carrier's zone. */
export async function insertStatements(
  db: Queryable,
  statements: { id: string; carrierId: string; businessDate: string }[],
): Promise<number> {
  const { rowCount } = await db.query(
    `INSERT INTO settlement_statements (id, carrier_id, business_date, timezone, currency, period_start, period_end)
     SELECT x.id, c.id, x.d, c.timezone, c.currency,
            x.d::timestamp AT TIME ZONE c.timezone, (x.d + 1)::timestamp AT TIME ZONE c.timezone
       FROM unnest($1::text[], $2::text[], $3::date[]) AS x(id, carrier_id, d)
       JOIN carriers c ON c.id = x.carrier_id
     ORDER BY x.d
     ON CONFLICT (carrier_id, business_date) DO NOTHING`,
    [
      statements.map((s) => s.id),
      statements.map((s) => s.carrierId),
      statements.map((s) => s.businessDate),
    ],
  );
  return rowCount ?? 0;
}

export async function findStatement(
  db: Queryable,
  id: string,
  options: { carrierId?: string; forUpdate?: boolean } = {},
): Promise<StatementRow | undefined> {
  const { rows } = await db.query<StatementRow>(
    `SELECT ${STATEMENT_COLUMNS}
       FROM settlement_statements s JOIN carriers car ON car.id = s.carrier_id
      WHERE s.id = $1 AND ($2::text IS NULL OR s.carrier_id = $2)
      ${options.forUpdate ? 'FOR UPDATE OF s' : ''}`,
    [id, options.carrierId ?? null],
  );
  return rows[0];
}

/** Serialises closes of one carrier's statements (any instance, any statement). */
export async function lockCarrierSettlement(db: Queryable, carrierId: string): Promise<void> {
  await db.query(`SELECT pg_advisory_xact_lock(hashtextextended('settlement:' || $1, 0))`, [
    carrierId,
  ]);
}

export async function earlierOpenStatement(
  db: Queryable,
  statement: StatementRow,
): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM settlement_statements
      WHERE carrier_id = $1 AND business_date < $2::date AND status = 'open'
      ORDER BY business_date LIMIT 1`,
    [statement.carrier_id, statement.business_date],
  );
  return rows[0]?.id;
}

/**
 * Where the rows a statement takes start (as text, to keep microseconds):
 * - when an earlier statement of the carrier is still open, its own period start (that one takes
 *   what came before);
 * - otherwise the earlier of its period start and the late horizon of the carrier's previous
 *   statement, since a late row (one that committed after that close) is stamped at or after it;
 * - for a carrier's first statement, the beginning of time.
 */
export async function sweepFloor(db: Queryable, statementId: string): Promise<string> {
  const { rows } = await db.query<{ floor: string }>(
    `SELECT (CASE
               WHEN EXISTS (SELECT 1 FROM settlement_statements e
                             WHERE e.carrier_id = s.carrier_id AND e.business_date < s.business_date
                               AND e.status = 'open') THEN s.period_start
               WHEN p.id IS NULL THEN '-infinity'::timestamptz
               ELSE least(s.period_start, p.late_horizon)
             END)::text AS floor
       FROM settlement_statements s
       LEFT JOIN LATERAL (SELECT p.id, p.late_horizon FROM settlement_statements p
                           WHERE p.carrier_id = s.carrier_id AND p.business_date < s.business_date
                           ORDER BY p.business_date DESC LIMIT 1) p ON true
      WHERE s.id = $1`,
    [statementId],
  );
  return rows[0]!.floor;
}

/**
 * The earliest time at which a transaction still running in this database began, less
 * charge_stamp_tolerance() (migration 0011). Any charge or refund that this transaction's later
 * statements cannot see yet is stamped at or after it: with its transaction's now(), or — a
 * one-step charge — by the gateway's clock at most that tolerance before its transaction began.
 */
export async function lateHorizon(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ horizon: string }>(
    `SELECT (least(clock_timestamp(), min(xact_start)) - charge_stamp_tolerance())::text AS horizon
       FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND backend_type = 'client backend' AND xact_start IS NOT NULL`,
  );
  return rows[0]!.horizon;
}

/** Assigns the carrier's unassigned rows stamped in [floor, period end) to the statement. */
export async function assignItems(
  db: Queryable,
  statement: StatementRow,
  floor: string,
): Promise<number> {
  const { rowCount } = await db.query(
    `INSERT INTO settlement_items (item_type, item_id, merchant_id, amount, carrier_share, gateway_fee, merchant_net, statement_id)
     SELECT u.*, $4 FROM (${itemsStamped(false)}) u
     ON CONFLICT (item_id) DO NOTHING`,
    [statement.carrier_id, floor, statement.period_end, statement.id],
  );
  return rowCount ?? 0;
}

/** Freezes the per-merchant lines of the statement from its assigned items. */
export async function insertLines(db: Queryable, statementId: string): Promise<void> {
  await db.query(
    `WITH items AS (SELECT * FROM settlement_items WHERE statement_id = $1)
     INSERT INTO settlement_lines (merchant_id, merchant_name, charge_count, gross, refund_count, refunds,
                                   carrier_share, gateway_fee, merchant_net, owed_to_gateway, statement_id)
     SELECT a.merchant_id, a.merchant_name, a.charge_count::bigint, a.gross::bigint, a.refund_count::bigint,
            a.refunds::bigint, a.carrier_share::bigint, a.gateway_fee::bigint, a.merchant_net::bigint,
            a.owed_to_gateway::bigint, $1
       FROM (${LINE_AGGREGATE}) a`,
    [statementId],
  );
}

/** Closes the statement with totals summed from its frozen lines. */
export async function markClosed(
  db: Queryable,
  statementId: string,
  horizon: string,
): Promise<void> {
  await db.query(
    `WITH t AS (
       SELECT coalesce(sum(charge_count), 0) AS charge_count, coalesce(sum(refund_count), 0) AS refund_count,
              coalesce(sum(gross), 0) AS gross, coalesce(sum(refunds), 0) AS refunds,
              coalesce(sum(carrier_share), 0) AS carrier_share, coalesce(sum(gateway_fee), 0) AS gateway_fee,
              coalesce(sum(merchant_net), 0) AS merchant_net, coalesce(sum(owed_to_gateway), 0) AS owed_to_gateway
         FROM settlement_lines WHERE statement_id = $1)
     UPDATE settlement_statements s
        SET status = 'closed', closed_at = now(), updated_at = now(), late_horizon = $2::timestamptz,
            charge_count = t.charge_count, refund_count = t.refund_count, gross = t.gross, refunds = t.refunds,
            carrier_share = t.carrier_share, gateway_fee = t.gateway_fee, merchant_net = t.merchant_net,
            owed_to_gateway = t.owed_to_gateway
       FROM t WHERE s.id = $1`,
    [statementId, horizon],
  );
}

export async function markSettled(
  db: Queryable,
  statementId: string,
  paymentReference: string,
): Promise<void> {
  await db.query(
    `UPDATE settlement_statements SET status = 'settled', settled_at = now(), updated_at = now(),
            payment_reference = $2
      WHERE id = $1 AND status = 'closed'`,
    [statementId, paymentReference],
  );
}

/** The frozen lines of a closed statement, by merchant id. */
export async function statementLines(db: Queryable, statementId: string): Promise<LineRow[]> {
  const { rows } = await db.query<LineRow>(
    `SELECT merchant_id, merchant_name, charge_count::text, gross::text, refund_count::text, refunds::text,
            carrier_share::text, gateway_fee::text, merchant_net::text, owed_to_gateway::text
       FROM settlement_lines WHERE statement_id = $1 ORDER BY merchant_id`,
    [statementId],
  );
  return rows;
}

/** What a close of the statement would freeze now: its assigned and still-unassigned rows. */
export async function previewLines(
  db: Queryable,
  statement: StatementRow,
  floor: string,
): Promise<LineRow[]> {
  const { rows } = await db.query<LineRow>(
    `WITH items AS (
       ${itemsStamped(true)}
       UNION ALL
       SELECT item_type, item_id, merchant_id, amount, carrier_share, gateway_fee, merchant_net
         FROM settlement_items WHERE statement_id = $4)
     ${LINE_AGGREGATE}
     ORDER BY i.merchant_id`,
    [statement.carrier_id, floor, statement.period_end, statement.id],
  );
  return rows;
}

export interface StatementFilter {
  carrierId?: string;
  status?: StatementStatus;
  dateGte?: string;
  dateLt?: string;
  limit: number;
  /** The last statement of the previous page: its (business_date, id). */
  after?: { businessDate: string; id: string };
}

/** Newest day first; `limit + 1` rows so the caller can tell whether more follow. */
export async function listStatements(db: Queryable, f: StatementFilter): Promise<StatementRow[]> {
  const { rows } = await db.query<StatementRow>(
    `SELECT ${STATEMENT_COLUMNS}
       FROM settlement_statements s JOIN carriers car ON car.id = s.carrier_id
      WHERE ($1::text IS NULL OR s.carrier_id = $1)
        AND ($2::text IS NULL OR s.status = $2)
        AND ($3::date IS NULL OR s.business_date >= $3::date)
        AND ($4::date IS NULL OR s.business_date < $4::date)
        AND ($5::date IS NULL OR (s.business_date, s.id) < ($5::date, $6::text))
      ORDER BY s.business_date DESC, s.id DESC
      LIMIT $7`,
    [
      f.carrierId ?? null,
      f.status ?? null,
      f.dateGte ?? null,
      f.dateLt ?? null,
      f.after?.businessDate ?? null,
      f.after?.id ?? null,
      f.limit + 1,
    ],
  );
  return rows;
}

/** Open statements whose day ended at least `graceSeconds` ago, oldest day first. */
export async function dueStatements(
  db: Queryable,
  graceSeconds: number,
  limit: number,
): Promise<{ id: string }[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM settlement_statements
      WHERE status = 'open' AND period_end + make_interval(secs => $1) <= now()
      ORDER BY business_date, carrier_id LIMIT $2`,
    [graceSeconds, limit],
  );
  return rows;
}

/** What a merchant's lines on settled statements add up to, per currency. */
export async function merchantSettledTotals(
  db: Queryable,
  merchantId: string,
): Promise<{ currency: string; settled: string }[]> {
  const { rows } = await db.query<{ currency: string; settled: string }>(
    `SELECT s.currency, sum(l.merchant_net)::text AS settled
       FROM settlement_lines l JOIN settlement_statements s ON s.id = l.statement_id
      WHERE l.merchant_id = $1 AND s.status = 'settled'
      GROUP BY s.currency`,
    [merchantId],
  );
  return rows;
}
