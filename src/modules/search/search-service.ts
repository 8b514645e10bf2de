import { toPage, type Page } from '../../http/pagination.js';
import type { ChargeRow } from '../charges/charges-types.js';
import type { Pool } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import { assertRfc3339 } from '../audit/audit-service.js';
import { currencyExponent, parseNonNegativeAmount } from '../money/money.js';
import * as repo from './search-repo.js';
import {
  toAdminChargeView,
  type AdminChargeFilter,
  type AdminChargeQuery,
  type AdminChargeView,
  type ChargePosition,
} from './search-types.js';

export interface SearchService {
  /** Every tenant's charges matching all the given filters, newest first, a page at a time. */
  searchCharges(
    query: AdminChargeQuery,
    page: { limit: number; startingAfter?: string },
  ): Promise<Page<AdminChargeView>>;
}

/**
 * Amount bounds are amounts of money, so they need their currency: "1000" is a thousand dong or
 * ten dollars. Asking for it (rather than comparing minor units across currencies) keeps a
 * search from mixing them; the currency also becomes a filter.
 */
function toFilter(q: AdminChargeQuery): AdminChargeFilter {
  assertRfc3339(q.createdGte, 'created_gte');
  assertRfc3339(q.createdLt, 'created_lt');
  const hasBound = q.amountGte !== undefined || q.amountLte !== undefined;
  if (hasBound && q.currency === undefined) {
    throw new AppError(
      'validation_failed',
      'amount_gte and amount_lte are amounts in a currency: pass currency as well.',
      { param: 'currency' },
    );
  }
  const { currency } = q;
  if (currency !== undefined) currencyExponent(currency);
  const bound = (value: string | undefined, param: string) =>
    value === undefined || currency === undefined
      ? undefined
      : parseNonNegativeAmount(value, currency, param);
  return {
    merchantId: q.merchantId,
    carrierId: q.carrierId,
    msisdn: q.msisdn,
    status: q.status,
    currency,
    amountGte: bound(q.amountGte, 'amount_gte'),
    amountLte: bound(q.amountLte, 'amount_lte'),
    createdGte: q.createdGte,
    createdLt: q.createdLt,
  };
}

/**
 * One page of charges newest first by (created_at, id), `limit + 1` rows so the caller can tell
 * has_more: the admin search, and a merchant's own list (filter.merchantId set, and then the
 * cursor must be one of that merchant's charges). 400 invalid_cursor for an unknown cursor.
 */
export async function pageOfCharges(
  pool: Pool,
  filter: AdminChargeFilter,
  page: { limit: number; startingAfter?: string },
): Promise<ChargeRow[]> {
  let after: ChargePosition | undefined;
  if (page.startingAfter !== undefined) {
    after = await repo.findChargePosition(pool, page.startingAfter, filter.merchantId);
    if (!after) {
      throw new AppError('invalid_cursor', `No charge ${page.startingAfter}.`, {
        param: 'starting_after',
      });
    }
  }
  return repo.searchCharges(pool, filter, { limit: page.limit, after });
}

export function createSearchService(deps: { pool: Pool }): SearchService {
  const { pool } = deps;

  return {
    async searchCharges(query, page) {
      const rows = await pageOfCharges(pool, toFilter(query), page);
      return toPage(rows, page.limit, toAdminChargeView);
    },
  };
}
