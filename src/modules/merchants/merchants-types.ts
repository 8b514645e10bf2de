import { formatAmount } from '../money/money.js';

export type ConsentPolicy = 'carrier_default' | 'always_otp';

export interface MerchantRow {
  id: string;
  name: string;
  status: 'active' | 'suspended';
  fee_bps: number;
  per_transaction_max: string | null;
  per_transaction_max_currency: string | null;
  consent: ConsentPolicy;
  reservation_ttl_seconds: number | null;
  webhook_url: string | null;
  webhook_secret: string | null;
  webhook_status: 'enabled' | 'disabled';
  created_at: Date;
  updated_at: Date;
}

export interface MerchantView {
  id: string;
  name: string;
  status: 'active' | 'suspended';
  fee_bps: number;
  per_transaction_max: { amount: string; currency: string } | null;
  consent: ConsentPolicy;
  reservation_ttl_seconds: number | null;
  webhook_url: string | null;
  created_at: string;
  updated_at: string;
}

export function toMerchantView(row: MerchantRow): MerchantView {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    fee_bps: row.fee_bps,
    per_transaction_max:
      row.per_transaction_max === null || row.per_transaction_max_currency === null
        ? null
        : {
            amount: formatAmount(BigInt(row.per_transaction_max), row.per_transaction_max_currency),
            currency: row.per_transaction_max_currency,
          },
    consent: row.consent,
    reservation_ttl_seconds: row.reservation_ttl_seconds,
    webhook_url: row.webhook_url,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
