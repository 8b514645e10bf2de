import { maskMsisdn } from '../../lib/msisdn.js';
import { GATEWAY_OWNER } from '../ledger/ledger-types.js';
import { formatAmount } from '../money/money.js';

/** The ledger accounts an admin may correct (the suspense account itself is not among them). */
export const ADJUSTABLE_KINDS = [
  'subscriber',
  'merchant_payable',
  'carrier_share',
  'carrier_funding',
  'gateway_fees',
] as const;
export type AdjustableKind = (typeof ADJUSTABLE_KINDS)[number];

export type AdjustmentStatus = 'pending_approval' | 'posted' | 'rejected';
export type AdjustmentDirection = 'credit' | 'debit';

/**
 * The public name of a ledger account: its kind and owner. A merchant's payable account is named
 * by the merchant's id, a carrier's share and funding accounts by the carrier's id, a subscriber's
 * account by its carrier's id and MSISDN; the gateway's fee account has no owner_id.
 */
export interface AccountName {
  type: AdjustableKind;
  owner_id?: string;
  msisdn?: string;
}

export interface CreateAdjustmentInput {
  account: AccountName;
  amount: string;
  currency: string;
  /** credit raises the account's balance, debit lowers it. */
  direction: AdjustmentDirection;
  reason: string;
}

export interface AdjustmentRow {
  id: string;
  account_id: string;
  account_kind: AdjustableKind;
  owner_id: string;
  msisdn: string | null;
  currency: string;
  amount: string;
  direction: AdjustmentDirection;
  reason: string;
  status: AdjustmentStatus;
  created_by_key_id: string;
  decided_by_key_id: string | null;
  /** The people behind those keys; null only for corrections from before operators existed. */
  created_by_operator: string | null;
  decided_by_operator: string | null;
  rejection_reason: string | null;
  created_at: Date;
  decided_at: Date | null;
}

export interface AdjustmentView {
  id: string;
  object: 'adjustment';
  status: AdjustmentStatus;
  account: { type: AdjustableKind; owner_id: string | null; msisdn: string | null };
  amount: string;
  currency: string;
  direction: AdjustmentDirection;
  reason: string;
  created_by: string;
  created_by_operator: string | null;
  created_at: string;
  decided_by: string | null;
  decided_by_operator: string | null;
  decided_at: string | null;
  rejection_reason: string | null;
}

export function toAdjustmentView(row: AdjustmentRow): AdjustmentView {
  return {
    id: row.id,
    object: 'adjustment',
    status: row.status,
    account: {
      type: row.account_kind,
      owner_id: row.owner_id === GATEWAY_OWNER ? null : row.owner_id,
      msisdn: row.msisdn === null ? null : maskMsisdn(row.msisdn),
    },
    amount: formatAmount(BigInt(row.amount), row.currency),
    currency: row.currency,
    direction: row.direction,
    reason: row.reason,
    created_by: row.created_by_key_id,
    created_by_operator: row.created_by_operator,
    created_at: row.created_at.toISOString(),
    decided_by: row.decided_by_key_id,
    decided_by_operator: row.decided_by_operator,
    decided_at: row.decided_at ? row.decided_at.toISOString() : null,
    rejection_reason: row.rejection_reason,
  };
}
