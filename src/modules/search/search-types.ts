import {
  toChargeView,
  type ChargeRow,
  type ChargeStatus,
  type ChargeView,
} from '../charges/charges-types.js';

/** The search's filters as the contract admits them (strings still to be checked and parsed). */
export interface AdminChargeQuery {
  merchantId?: string;
  carrierId?: string;
  /** Full E.164. */
  msisdn?: string;
  status?: ChargeStatus;
  currency?: string;
  /** Decimal strings in `currency`, inclusive bounds on the charge's amount. */
  amountGte?: string;
  amountLte?: string;
  createdGte?: string;
  createdLt?: string;
}

/** The filters as the repo applies them: amounts in minor units. */
export interface AdminChargeFilter {
  merchantId?: string;
  carrierId?: string;
  msisdn?: string;
  status?: ChargeStatus;
  currency?: string;
  amountGte?: bigint;
  amountLte?: bigint;
  createdGte?: string;
  createdLt?: string;
}

/** Where a charge sits in the newest-first order: created_at as UTC text with microseconds. */
export interface ChargePosition {
  id: string;
  created_at: string;
}

/** A charge as the merchant API shows it (MSISDN masked), plus whose it is. */
export type AdminChargeView = ChargeView & { merchant_id: string; carrier_id: string };

export function toAdminChargeView(row: ChargeRow): AdminChargeView {
  return { ...toChargeView(row), merchant_id: row.merchant_id, carrier_id: row.carrier_id };
}
