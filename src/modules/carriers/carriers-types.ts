import { formatAmount } from '../money/money.js';

export type FundingType = 'prepaid' | 'postpaid';
export const FUNDING_TYPES: FundingType[] = ['prepaid', 'postpaid'];
export const LIMIT_NAMES = ['per_transaction_max', 'daily_max', 'monthly_max'] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

export interface CarrierRow {
  id: string;
  code: string;
  name: string;
  currency: string;
  timezone: string;
  revenue_share_bps: number;
  status: 'active' | 'suspended';
  prepaid_per_transaction_max: string | null;
  prepaid_daily_max: string | null;
  prepaid_monthly_max: string | null;
  postpaid_per_transaction_max: string | null;
  postpaid_daily_max: string | null;
  postpaid_monthly_max: string | null;
  otp_threshold: string | null;
  sms_url: string | null;
  created_at: Date;
  updated_at: Date;
}

export type LimitColumn = `${FundingType}_${LimitName}`;

/** Spend caps in minor units; null means no cap. */
export type CarrierLimits = Record<FundingType, Record<LimitName, bigint | null>>;

export function carrierLimits(row: CarrierRow): CarrierLimits {
  const pick = (col: LimitColumn) => (row[col] === null ? null : BigInt(row[col]));
  return {
    prepaid: {
      per_transaction_max: pick('prepaid_per_transaction_max'),
      daily_max: pick('prepaid_daily_max'),
      monthly_max: pick('prepaid_monthly_max'),
    },
    postpaid: {
      per_transaction_max: pick('postpaid_per_transaction_max'),
      daily_max: pick('postpaid_daily_max'),
      monthly_max: pick('postpaid_monthly_max'),
    },
  };
}

/**
 * Defaults when onboarding without limits. VND follows the Mobile Money pilot: prepaid 5,000,000
 * per transaction and 10,000,000 a month; postpaid 500,000 per transaction. Other currencies
 * start uncapped and carriers set their own.
 */
export function defaultLimits(currency: string): CarrierLimits {
  if (currency === 'VND') {
    return {
      prepaid: { per_transaction_max: 5_000_000n, daily_max: null, monthly_max: 10_000_000n },
      postpaid: { per_transaction_max: 500_000n, daily_max: null, monthly_max: null },
    };
  }
  return {
    prepaid: { per_transaction_max: null, daily_max: null, monthly_max: null },
    postpaid: { per_transaction_max: null, daily_max: null, monthly_max: null },
  };
}

export interface CarrierView {
  id: string;
  code: string;
  name: string;
  currency: string;
  timezone: string;
  revenue_share_bps: number;
  status: 'active' | 'suspended';
  limits: Record<FundingType, Record<LimitName, string | null>>;
  otp_threshold: string | null;
  sms_url: string | null;
  created_at: string;
  updated_at: string;
}

export function toCarrierView(row: CarrierRow): CarrierView {
  const limits = carrierLimits(row);
  const fmt = (v: bigint | null) => (v === null ? null : formatAmount(v, row.currency));
  const fmtAll = (l: Record<LimitName, bigint | null>) => ({
    per_transaction_max: fmt(l.per_transaction_max),
    daily_max: fmt(l.daily_max),
    monthly_max: fmt(l.monthly_max),
  });
  return {
    id: row.id,
    code: row.code,
    name: row.name,
    currency: row.currency,
    timezone: row.timezone,
    revenue_share_bps: row.revenue_share_bps,
    status: row.status,
    limits: { prepaid: fmtAll(limits.prepaid), postpaid: fmtAll(limits.postpaid) },
    otp_threshold:
      row.otp_threshold === null ? null : formatAmount(BigInt(row.otp_threshold), row.currency),
    sms_url: row.sms_url,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
