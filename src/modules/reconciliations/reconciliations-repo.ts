import type { Queryable } from '../../db/pool.js';
import type { InvalidRow, ValidRow } from './reconciliations-csv.js';
import type {
  ExceptionCategory,
  ExceptionRow,
  ReconciliationCounts,
  ReconciliationRow,
} from './reconciliations-types.js';

/**
 * The file's rows are staged in a temporary table of the one session that runs the
 * reconciliation: nothing is WAL-logged for them, no other session sees them, and they vanish
 * with the session even if the process dies half-way.
 */
export async function createStaging(db: Queryable): Promise<void> {
  await db.query('DROP TABLE IF EXISTS pg_temp.reconciliation_rows');
  await db.query(
    `CREATE TEMPORARY TABLE reconciliation_rows (
       line            bigint NOT NULL,
       gateway_ref     text,
       carrier_ref     text,
       msisdn          text,
       type            text,
       amount          numeric,
       amount_text     text,
       currency        text,
       occurred_at     timestamptz,
       invalid_reason  text
     )`,
  );
}

export async function dropStaging(db: Queryable): Promise<void> {
  await db.query('DROP TABLE IF EXISTS pg_temp.reconciliation_rows');
}

/** Appends a batch of rows (valid and invalid) with one INSERT. */
export async function insertStaged(
  db: Queryable,
  rows: ({ valid: ValidRow } | { invalid: InvalidRow })[],
): Promise<void> {
  const cols = {
    line: [] as number[],
    gatewayRef: [] as (string | null)[],
    carrierRef: [] as (string | null)[],
    msisdn: [] as (string | null)[],
    type: [] as (string | null)[],
    amount: [] as (string | null)[],
    currency: [] as (string | null)[],
    occurredAt: [] as (string | null)[],
    reason: [] as (string | null)[],
  };
  for (const r of rows) {
    if ('valid' in r) {
      const v = r.valid;
      cols.line.push(v.line);
      cols.gatewayRef.push(v.gatewayRef);
      cols.carrierRef.push(v.carrierRef);
      cols.msisdn.push(v.msisdn);
      cols.type.push(v.type);
      cols.amount.push(v.amount);
      cols.currency.push(v.currency);
      cols.occurredAt.push(v.occurredAt);
      cols.reason.push(null);
    } else {
      const i = r.invalid;
      cols.line.push(i.line);
      cols.gatewayRef.push(i.gatewayRef);
      cols.carrierRef.push(i.carrierRef);
      cols.msisdn.push(null);
      cols.type.push(null);
      cols.amount.push(null);
      cols.currency.push(null);
      cols.occurredAt.push(null);
      cols.reason.push(i.reason);
    }
  }
  await db.query(
    `INSERT INTO pg_temp.reconciliation_rows
       (line, gateway_ref, carrier_ref, msisdn, type, amount, amount_text, currency, occurred_at, invalid_reason)
     SELECT line, gateway_ref, carrier_ref, msisdn, type, amount::numeric, amount, currency, occurred_at, invalid_reason
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                   $8::timestamptz[], $9::text[])
         AS x(line, gateway_ref, carrier_ref, msisdn, type, amount, currency, occurred_at, invalid_reason)`,
    [
      cols.line,
      cols.gatewayRef,
      cols.carrierRef,
      cols.msisdn,
      cols.type,
      cols.amount,
      cols.currency,
      cols.occurredAt,
      cols.reason,
    ],
  );
}

/** Gives the planner the staged table's size and an index for the gateway-side anti-join. */
export async function prepareStaging(db: Queryable): Promise<void> {
  await db.query('CREATE INDEX ON pg_temp.reconciliation_rows (gateway_ref)');
  await db.query('ANALYZE pg_temp.reconciliation_rows');
}

export async function insertRun(
  db: Queryable,
  r: {
    id: string;
    carrierId: string;
    source: 'api' | 'cli';
    periodStart: Date | null;
    periodEnd: Date | null;
    bytes: number;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO reconciliations (id, carrier_id, status, source, period_start, period_end, bytes, rows_total)
     VALUES ($1, $2, 'completed', $3, $4, $5, $6, 0)`,
    [r.id, r.carrierId, r.source, r.periodStart, r.periodEnd, r.bytes],
  );
}

export async function completeRun(
  db: Queryable,
  id: string,
  rowsTotal: number,
  counts: ReconciliationCounts,
): Promise<void> {
  await db.query(
    `UPDATE reconciliations
        SET rows_total = $2, matched = $3, amount_mismatch = $4, missing_at_carrier = $5,
            missing_at_gateway = $6, duplicate = $7, invalid_row = $8, completed_at = clock_timestamp()
      WHERE id = $1`,
    [
      id,
      rowsTotal,
      counts.matched,
      counts.amount_mismatch,
      counts.missing_at_carrier,
      counts.missing_at_gateway,
      counts.duplicate,
      counts.invalid_row,
    ],
  );
}

/**
 * Classifies the staged rows against the carrier's captured charges and refunds and stores every
 * exception; returns how many of each category were stored. Matched rows are only counted by
 * the caller (valid rows minus the exceptions among them).
 *
 * - invalid_row: rows that failed to parse (with their reason);
 * - duplicate: a later row with the gateway_ref of an earlier valid row;
 * - missing_at_gateway: no captured charge (ch_…) or refund (re_…) of this carrier by that id;
 * - amount_mismatch: found, but type, amount, currency or msisdn differ (all differing fields named);
 * - missing_at_carrier: a charge captured or a refund created in [period start, period end) that
 *   no row of the file names (a malformed row naming it counts as naming it).
 */
export async function classify(
  db: Queryable,
  p: {
    reconciliationId: string;
    carrierId: string;
    exponent: number;
    periodStart: Date | null;
    periodEnd: Date | null;
  },
): Promise<Record<ExceptionCategory, number>> {
  const { rows } = await db.query<{ category: ExceptionCategory; n: string }>(
    `WITH staged AS MATERIALIZED (
       SELECT s.line, s.gateway_ref, s.carrier_ref, s.msisdn, s.type, s.amount, s.amount_text, s.currency,
              row_number() OVER w AS occurrence, first_value(s.line) OVER w AS first_line
         FROM pg_temp.reconciliation_rows s
        WHERE s.invalid_reason IS NULL
       WINDOW w AS (PARTITION BY s.gateway_ref ORDER BY s.line)),
     looked AS MATERIALIZED (
       SELECT st.line, st.gateway_ref, st.carrier_ref, st.msisdn, st.type, st.amount, st.amount_text, st.currency,
              CASE WHEN c.id IS NOT NULL THEN 'charge' WHEN rc.id IS NOT NULL THEN 'refund' END AS g_type,
              round(CASE WHEN c.id IS NOT NULL THEN c.amount_captured ELSE r.amount END
                    / power(10::numeric, $3::int), $3::int) AS g_amount,
              CASE WHEN c.id IS NOT NULL THEN c.currency ELSE r.currency END AS g_currency,
              CASE WHEN c.id IS NOT NULL THEN c.msisdn ELSE rc.msisdn END AS g_msisdn
         FROM staged st
         LEFT JOIN charges c ON c.id = st.gateway_ref AND c.carrier_id = $2 AND c.captured_at IS NOT NULL
         LEFT JOIN refunds r ON r.id = st.gateway_ref
         LEFT JOIN charges rc ON rc.id = r.charge_id AND rc.carrier_id = $2
        WHERE st.occurrence = 1),
     compared AS (
       SELECT l.*, l.type <> l.g_type AS d_type, l.amount <> l.g_amount AS d_amount,
              l.currency <> l.g_currency AS d_currency, l.msisdn <> l.g_msisdn AS d_msisdn
         FROM looked l WHERE l.g_type IS NOT NULL),
     exceptions AS (
       SELECT 'invalid_row'::text AS category, s.line, s.gateway_ref, s.carrier_ref, NULL::text AS type,
              NULL::text AS field, NULL::text AS carrier_value, NULL::text AS gateway_value, s.invalid_reason AS reason
         FROM pg_temp.reconciliation_rows s WHERE s.invalid_reason IS NOT NULL
       UNION ALL
       SELECT 'duplicate', d.line, d.gateway_ref, d.carrier_ref, d.type, NULL, d.amount_text, NULL,
              'gateway_ref ' || d.gateway_ref || ' already appears on line ' || d.first_line
         FROM staged d WHERE d.occurrence > 1
       UNION ALL
       SELECT 'missing_at_gateway', l.line, l.gateway_ref, l.carrier_ref, l.type, NULL, l.amount_text, NULL,
              'The gateway has no captured charge or refund ' || l.gateway_ref || ' of this carrier.'
         FROM looked l WHERE l.g_type IS NULL
       UNION ALL
       SELECT 'amount_mismatch', c.line, c.gateway_ref, c.carrier_ref, c.type,
              concat_ws(';', CASE WHEN c.d_type THEN 'type' END, CASE WHEN c.d_amount THEN 'amount' END,
                        CASE WHEN c.d_currency THEN 'currency' END, CASE WHEN c.d_msisdn THEN 'msisdn' END),
              concat_ws(';', CASE WHEN c.d_type THEN c.type END, CASE WHEN c.d_amount THEN c.amount_text END,
                        CASE WHEN c.d_currency THEN c.currency END, CASE WHEN c.d_msisdn THEN c.msisdn END),
              concat_ws(';', CASE WHEN c.d_type THEN c.g_type END, CASE WHEN c.d_amount THEN c.g_amount::text END,
                        CASE WHEN c.d_currency THEN c.g_currency END, CASE WHEN c.d_msisdn THEN c.g_msisdn END),
              'Differs from the gateway''s record in ' ||
              concat_ws(', ', CASE WHEN c.d_type THEN 'type' END, CASE WHEN c.d_amount THEN 'amount' END,
                        CASE WHEN c.d_currency THEN 'currency' END, CASE WHEN c.d_msisdn THEN 'msisdn' END) || '.'
         FROM compared c WHERE c.d_type OR c.d_amount OR c.d_currency OR c.d_msisdn
       UNION ALL
       SELECT 'missing_at_carrier', NULL, c.id, NULL, 'charge', NULL, NULL,
              round(c.amount_captured / power(10::numeric, $3::int), $3::int)::text,
              'Captured at ' || to_char(c.captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
              || ' but not in the carrier''s file.'
         FROM charges c
        WHERE c.carrier_id = $2 AND c.captured_at IS NOT NULL
          AND c.captured_at >= $4::timestamptz AND c.captured_at < $5::timestamptz
          AND NOT EXISTS (SELECT 1 FROM pg_temp.reconciliation_rows s WHERE s.gateway_ref = c.id)
       UNION ALL
       SELECT 'missing_at_carrier', NULL, r.id, NULL, 'refund', NULL, NULL,
              round(r.amount / power(10::numeric, $3::int), $3::int)::text,
              'Refunded at ' || to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
              || ' but not in the carrier''s file.'
         FROM refunds r JOIN charges c ON c.id = r.charge_id
        WHERE c.carrier_id = $2 AND r.created_at >= $4::timestamptz AND r.created_at < $5::timestamptz
          AND NOT EXISTS (SELECT 1 FROM pg_temp.reconciliation_rows s WHERE s.gateway_ref = r.id)),
     ins AS (
       INSERT INTO reconciliation_exceptions
         (reconciliation_id, seq, category, line, gateway_ref, carrier_ref, type, field, carrier_value, gateway_value, reason)
       SELECT $1, row_number() OVER (ORDER BY e.line NULLS LAST, e.gateway_ref), e.* FROM exceptions e
       RETURNING category)
     SELECT category, count(*)::text AS n FROM ins GROUP BY category`,
    [p.reconciliationId, p.carrierId, p.exponent, p.periodStart, p.periodEnd],
  );
  const counts: Record<ExceptionCategory, number> = {
    amount_mismatch: 0,
    missing_at_carrier: 0,
    missing_at_gateway: 0,
    duplicate: 0,
    invalid_row: 0,
  };
  for (const r of rows) counts[r.category] = Number(r.n);
  return counts;
}

export async function findRun(
  db: Queryable,
  id: string,
  carrierId?: string,
): Promise<ReconciliationRow | undefined> {
  const { rows } = await db.query<ReconciliationRow>(
    `SELECT id, carrier_id, status, source, period_start, period_end, bytes::text, rows_total::text,
            matched::text, amount_mismatch::text, missing_at_carrier::text, missing_at_gateway::text,
            duplicate::text, invalid_row::text, created_at, completed_at
       FROM reconciliations WHERE id = $1 AND ($2::text IS NULL OR carrier_id = $2)`,
    [id, carrierId ?? null],
  );
  return rows[0];
}

/** A page of a run's exceptions after `afterSeq` (keyset: bounded memory however many there are). */
export async function exceptionsPage(
  db: Queryable,
  reconciliationId: string,
  afterSeq: string,
  limit: number,
): Promise<ExceptionRow[]> {
  const { rows } = await db.query<ExceptionRow>(
    `SELECT seq::text, category, line::text, gateway_ref, carrier_ref, type, field, carrier_value,
            gateway_value, reason
       FROM reconciliation_exceptions x
      WHERE x.reconciliation_id = $1 AND x.seq > $2::bigint
      ORDER BY x.seq LIMIT $3`,
    [reconciliationId, afterSeq, limit],
  );
  return rows;
}

export async function findCarrierForReconciliation(
  db: Queryable,
  where: { id?: string; code?: string },
): Promise<{ id: string; code: string; currency: string } | undefined> {
  const { rows } = await db.query<{ id: string; code: string; currency: string }>(
    `SELECT id, code, currency FROM carriers
      WHERE ($1::text IS NULL OR id = $1) AND ($2::text IS NULL OR code = $2)`,
    [where.id ?? null, where.code ?? null],
  );
  return rows[0];
}
