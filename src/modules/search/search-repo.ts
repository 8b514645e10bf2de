import type { Queryable } from '../../db/pool.js';
import type { ChargeRow } from '../charges/charges-types.js';
import type { AdminChargeFilter, ChargePosition } from './search-types.js';

/** created_at as UTC text with microseconds: a JS Date would drop them and the cursor would slip. */
const CREATED_AT_TEXT = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** Where a charge sits in the (created_at, id) order; with `merchantId`, only that merchant's. */
export async function findChargePosition(
  db: Queryable,
  id: string,
  merchantId?: string,
): Promise<ChargePosition | undefined> {
  const { rows } = await db.query<ChargePosition>(
    `SELECT id, ${CREATED_AT_TEXT} AS created_at FROM charges
      WHERE id = $1 AND ($2::text IS NULL OR merchant_id = $2)`,
    [id, merchantId ?? null],
  );
  return rows[0];
}

/**
 * Every tenant's charges, newest first by (created_at, id), `limit + 1` rows so the caller can
 * tell has_more. Only the filters given become predicates, so each search is planned on the
 * index that fits it (migration 0010 lists them).
 *
 * Paging is a keyset on (created_at, id), both immutable, and it has neither repeats nor gaps
 * while charges are being inserted. No repeats: each page takes keys strictly below the last one
 * shown. No gaps: a charge committed before the first page was read either sorts at or above the
 * cursor (and was on a page already shown) or below it (and is still ahead). created_at is fixed
 * before the commit (when the charge is written, or its transaction starts), so a charge that
 * commits while a reader pages may sort below the cursor: it then shows up on a later page, once,
 * like any charge still ahead; one that sorts above the cursor is newer than the reader's
 * position and shows up on a fresh first page. Ordering by the id alone would be just as
 * gap-free, for the same reasons; (created_at, id) is chosen so that a time range is an index
 * range rather than a filter. A charge whose status changes between two pages may leave or enter
 * a status filter: that is the search being current, not the cursor slipping.
 */
export async function searchCharges(
  db: Queryable,
  filter: AdminChargeFilter,
  page: { limit: number; after?: ChargePosition },
): Promise<ChargeRow[]> {
  const where: string[] = [];
  const values: unknown[] = [];
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  if (filter.merchantId !== undefined) where.push(`ch.merchant_id = ${bind(filter.merchantId)}`);
  if (filter.carrierId !== undefined) where.push(`ch.carrier_id = ${bind(filter.carrierId)}`);
  if (filter.msisdn !== undefined) {
    // Through the subscribers of that number (one per carrier at most) and their charges' index.
    where.push(
      `ch.subscriber_id IN (SELECT s.id FROM subscribers s WHERE s.msisdn = ${bind(filter.msisdn)})`,
    );
  }
  if (filter.status !== undefined) where.push(`ch.status = ${bind(filter.status)}`);
  if (filter.currency !== undefined) where.push(`ch.currency = ${bind(filter.currency)}`);
  if (filter.amountGte !== undefined)
    where.push(`ch.amount >= ${bind(filter.amountGte.toString())}::bigint`);
  if (filter.amountLte !== undefined)
    where.push(`ch.amount <= ${bind(filter.amountLte.toString())}::bigint`);
  if (filter.createdGte !== undefined)
    where.push(`ch.created_at >= ${bind(filter.createdGte)}::timestamptz`);
  if (filter.createdLt !== undefined)
    where.push(`ch.created_at < ${bind(filter.createdLt)}::timestamptz`);
  if (page.after !== undefined) {
    where.push(
      `(ch.created_at, ch.id) < (${bind(page.after.created_at)}::timestamptz, ${bind(page.after.id)})`,
    );
  }
  const { rows } = await db.query<ChargeRow>(
    `SELECT ch.*, car.code AS carrier_code
       FROM charges ch JOIN carriers car ON car.id = ch.carrier_id
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY ch.created_at DESC, ch.id DESC
      LIMIT ${bind(page.limit + 1)}`,
    values,
  );
  return rows;
}
