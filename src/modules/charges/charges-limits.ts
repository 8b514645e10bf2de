import type { PoolClient } from '../../db/pool.js';
import { carrierLimits, type CarrierRow } from '../carriers/carriers-types.js';
import type { MerchantRow } from '../merchants/merchants-types.js';
import type { SubscriberRow } from '../subscribers/subscribers-types.js';
import { lockSubscriberAccount, spendCapExceeded } from './charges-repo.js';
import type { DenialCode } from './charges-types.js';

export interface LimitParties {
  merchant: Pick<MerchantRow, 'per_transaction_max' | 'per_transaction_max_currency'>;
  carrier: CarrierRow;
  subscriber: Pick<SubscriberRow, 'id' | 'account_id' | 'funding_type'>;
}

/**
 * The per-transaction caps: the carrier's for the subscriber's funding type, and the merchant's
 * own when it is set in the charge's currency (a cap in another currency cannot be compared
 * without an exchange rate, so it does not apply).
 */
export function perTransactionDenial(
  parties: LimitParties,
  amount: bigint,
  currency: string,
): DenialCode | null {
  const { merchant, carrier, subscriber } = parties;
  const carrierMax = carrierLimits(carrier)[subscriber.funding_type].per_transaction_max;
  if (carrierMax !== null && amount > carrierMax) return 'limit_per_transaction_exceeded';
  if (
    merchant.per_transaction_max !== null &&
    merchant.per_transaction_max_currency === currency &&
    amount > BigInt(merchant.per_transaction_max)
  ) {
    return 'limit_per_transaction_exceeded';
  }
  return null;
}

/** The carrier's daily and monthly caps on the subscriber's spend, or null when it sets neither. */
export function spendCaps(
  carrier: CarrierRow,
  subscriber: Pick<SubscriberRow, 'funding_type'>,
): { daily_max: bigint | null; monthly_max: bigint | null } | null {
  const { daily_max, monthly_max } = carrierLimits(carrier)[subscriber.funding_type];
  return daily_max === null && monthly_max === null ? null : { daily_max, monthly_max };
}

/**
 * SPEC §4.4: the daily or monthly cap the charge would break, or null; the per-transaction caps
 * are checked before (perTransactionDenial). Runs inside the transaction that then holds or posts
 * the amount: the subscriber's account row is locked before spend is counted, so concurrent
 * charges of one subscriber are counted one after another and cannot overshoot.
 */
export async function spendLimitDenial(
  tx: PoolClient,
  parties: LimitParties,
  amount: bigint,
): Promise<DenialCode | null> {
  const { carrier, subscriber } = parties;
  const caps = spendCaps(carrier, subscriber);
  if (!caps) return null;
  await lockSubscriberAccount(tx, subscriber.account_id);
  return spendCapExceeded(tx, {
    subscriberId: subscriber.id,
    timezone: carrier.timezone,
    amount,
    dailyMax: caps.daily_max,
    monthlyMax: caps.monthly_max,
  });
}
