import { maskMsisdn } from '../../lib/msisdn.js';
import type { FundingType } from '../carriers/carriers-types.js';
import { formatAmount, type RevenueSplit } from '../money/money.js';

export type ChargeStatus = 'pending_validation' | 'reserved' | 'succeeded' | 'denied' | 'cancelled';

export type DenialCode =
  | 'insufficient_funds'
  | 'credit_limit_exceeded'
  | 'limit_per_transaction_exceeded'
  | 'limit_daily_exceeded'
  | 'limit_monthly_exceeded'
  | 'subscriber_barred'
  | 'subscriber_suspended'
  | 'otp_attempts_exceeded'
  /** SPEC §10: the number had too many wrong codes across all charges (charges-otp-lock.ts). */
  | 'otp_locked';

export interface ChargeRow {
  id: string;
  merchant_id: string;
  carrier_id: string;
  carrier_code: string;
  subscriber_id: string;
  msisdn: string;
  funding_type: FundingType;
  status: ChargeStatus;
  capture: boolean;
  amount: string;
  currency: string;
  amount_held: string;
  amount_captured: string;
  amount_refunded: string;
  revenue_share_bps: number;
  fee_bps: number;
  carrier_share: string | null;
  gateway_fee: string | null;
  merchant_net: string | null;
  refunded_carrier_share: string;
  refunded_gateway_fee: string;
  refunded_merchant_net: string;
  description: string;
  merchant_reference: string | null;
  metadata: Record<string, string> | null;
  denial_code: DenialCode | null;
  cancellation_reason: string | null;
  reserved_until: Date | null;
  created_at: Date;
  updated_at: Date;
  captured_at: Date | null;
}

export interface ChargeView {
  id: string;
  object: 'charge';
  status: ChargeStatus;
  amount: string;
  currency: string;
  amount_captured: string;
  amount_refunded: string;
  capture: boolean;
  msisdn: string;
  carrier: string;
  funding_type: FundingType;
  description: string;
  merchant_reference: string | null;
  denial_code: DenialCode | null;
  cancellation_reason: string | null;
  split: { carrier_share: string; gateway_fee: string; merchant_net: string } | null;
  reserved_until: string | null;
  created_at: string;
  updated_at: string;
  metadata: Record<string, string> | null;
}

export function chargeSplit(row: ChargeRow): RevenueSplit | null {
  if (row.carrier_share === null || row.gateway_fee === null || row.merchant_net === null)
    return null;
  return {
    carrierShare: BigInt(row.carrier_share),
    gatewayFee: BigInt(row.gateway_fee),
    merchantNet: BigInt(row.merchant_net),
  };
}

export function toChargeView(row: ChargeRow): ChargeView {
  const fmt = (v: string | bigint) => formatAmount(BigInt(v), row.currency);
  const split = chargeSplit(row);
  return {
    id: row.id,
    object: 'charge',
    status: row.status,
    amount: fmt(row.amount),
    currency: row.currency,
    amount_captured: fmt(row.amount_captured),
    amount_refunded: fmt(row.amount_refunded),
    capture: row.capture,
    msisdn: maskMsisdn(row.msisdn),
    carrier: row.carrier_code,
    funding_type: row.funding_type,
    description: row.description,
    merchant_reference: row.merchant_reference,
    denial_code: row.denial_code,
    cancellation_reason: row.cancellation_reason,
    split: split
      ? {
          carrier_share: fmt(split.carrierShare),
          gateway_fee: fmt(split.gatewayFee),
          merchant_net: fmt(split.merchantNet),
        }
      : null,
    reserved_until: row.reserved_until ? row.reserved_until.toISOString() : null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    metadata: row.metadata,
  };
}

export interface CreateChargeInput {
  msisdn: string;
  amount: string;
  currency: string;
  description: string;
  merchant_reference?: string;
  capture?: boolean;
  metadata?: Record<string, string>;
}
