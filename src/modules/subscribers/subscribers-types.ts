import type { FundingType } from '../carriers/carriers-types.js';

/** `ported_out`: the number moved to another carrier; the record stays as read-only history. */
export type SubscriberStatus = 'active' | 'suspended' | 'barred' | 'ported_out';
/** The statuses a carrier may set; only a port completion sets `ported_out`. */
export type SettableSubscriberStatus = Exclude<SubscriberStatus, 'ported_out'>;

export interface SubscriberRow {
  id: string;
  carrier_id: string;
  msisdn: string;
  funding_type: FundingType;
  status: SubscriberStatus;
  credit_limit: string;
  account_id: string;
  created_at: Date;
  updated_at: Date;
}

/** The floor of a subscriber's available balance: prepaid never below zero, postpaid never past its credit limit. */
export function subscriberFloor(fundingType: FundingType, creditLimit: bigint): bigint {
  return fundingType === 'prepaid' ? 0n : -creditLimit;
}
