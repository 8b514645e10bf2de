import type { FundingType } from '../carriers/carriers-types.js';

export type SubscriberStatus = 'active' | 'suspended' | 'barred';

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
