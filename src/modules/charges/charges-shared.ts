import type { PoolClient } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { problemBody } from '../../http/problem.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import type { Metrics } from '../../metrics.js';
import { insertAuditEvent, type AuditRecord } from '../audit/audit-repo.js';
import { insertEvent, type EventType, type NewEvent } from '../events/events-repo.js';
import type { Outcome } from '../idempotency/idempotency-service.js';
import { GATEWAY_OWNER, type LedgerService } from '../ledger/ledger-service.js';
import type { Leg } from '../ledger/ledger-types.js';
import type { CarrierRow } from '../carriers/carriers-types.js';
import type { IdempotentRequest } from '../idempotency/idempotency-service.js';
import type { MerchantRow } from '../merchants/merchants-types.js';
import { splitRevenue, type RevenueSplit } from '../money/money.js';
import type { SubscriberRow } from '../subscribers/subscribers-types.js';
import { perTransactionDenial } from './charges-limits.js';
import * as repo from './charges-repo.js';
import {
  toChargeView,
  type ChargeRow,
  type ChargeView,
  type CreateChargeInput,
  type DenialCode,
} from './charges-types.js';

const DENIAL_MESSAGES: Record<DenialCode, string> = {
  insufficient_funds: 'The subscriber’s prepaid balance does not cover this charge.',
  credit_limit_exceeded: 'The charge would take the subscriber past their credit limit.',
  limit_per_transaction_exceeded: 'The amount exceeds the per-transaction limit.',
  limit_daily_exceeded: 'The charge would exceed the subscriber’s daily spend limit.',
  limit_monthly_exceeded: 'The charge would exceed the subscriber’s monthly spend limit.',
  subscriber_barred: 'The subscriber has opted out of carrier billing.',
  subscriber_suspended: 'The subscriber’s account is suspended.',
  otp_attempts_exceeded: 'Too many wrong one-time codes.',
  otp_locked:
    'Too many wrong one-time codes for this number; charges needing a code are refused for a while.',
};

const EVENT_FOR_STATUS: Record<ChargeRow['status'], EventType> = {
  succeeded: 'charge.succeeded',
  reserved: 'charge.reserved',
  pending_validation: 'charge.pending_validation',
  denied: 'charge.denied',
  cancelled: 'charge.cancelled',
};

/** The legs that move a captured amount: out of the subscriber, split to carrier, gateway and merchant. */
export function captureLegs(
  subscriberAccount: string,
  parties: { merchant: Leg['account']; carrier: Leg['account']; fees: Leg['account'] },
  amount: bigint,
  split: RevenueSplit,
): Leg[] {
  return [
    { account: { id: subscriberAccount, hot: false }, amount: -amount },
    { account: parties.carrier, amount: split.carrierShare },
    { account: parties.fees, amount: split.gatewayFee },
    { account: parties.merchant, amount: split.merchantNet },
  ];
}

/**
 * The legs of a refund: a capture's legs reversed, for the refunded amount and its share of the
 * split; `credited` is the subscriber's account, or what stands in for it once the number left.
 */
export function refundLegs(
  credited: Leg['account'],
  parties: { merchant: Leg['account']; carrier: Leg['account']; fees: Leg['account'] },
  amount: bigint,
  parts: RevenueSplit,
): Leg[] {
  const [, ...partyLegs] = captureLegs(credited.id, parties, amount, parts);
  return [
    { account: credited, amount },
    ...partyLegs.map((leg) => ({ ...leg, amount: -leg.amount })),
  ];
}

/** A business outcome answered as problem+json (stored and replayed like any other). */
export function problemOutcome(err: AppError, requestId: string): Outcome {
  return {
    status: err.status,
    body: problemBody(err, requestId),
    contentType: 'application/problem+json',
  };
}

export function denialOutcome(charge: ChargeRow, requestId: string): Outcome {
  const code = charge.denial_code!;
  return problemOutcome(
    new AppError('payment_denied', DENIAL_MESSAGES[code], {
      extra: { code, charge_id: charge.id, denial_code: code },
    }),
    requestId,
  );
}

export function invalidState(charge: ChargeRow, action: string): AppError {
  return new AppError('invalid_state', `Cannot ${action} a charge that is ${charge.status}.`, {
    extra: { charge_id: charge.id, current_status: charge.status },
  });
}

/** The audit event and merchant event that record a change of a charge, and the charge's view. */
export function changeRecords(
  charge: ChargeRow,
  action: string,
  extra: Record<string, unknown> = {},
): { view: ChargeView; audit: AuditRecord; event: NewEvent } {
  const view = toChargeView(charge);
  return {
    view,
    audit: {
      action,
      objectType: 'charge',
      objectId: charge.id,
      summary: {
        status: charge.status,
        amount: charge.amount,
        currency: charge.currency,
        msisdn: maskMsisdn(charge.msisdn),
        ...extra,
      },
    },
    event: {
      merchantId: charge.merchant_id,
      type: EVENT_FOR_STATUS[charge.status],
      subjectId: charge.id,
      data: view as unknown as Record<string, unknown>,
    },
  };
}

/** Records a change's audit event and merchant event; both commit with the change. */
export async function recordChange(
  tx: PoolClient,
  metrics: Pick<Metrics, 'charges'>,
  actor: Actor,
  charge: ChargeRow,
  action: string,
  extra: Record<string, unknown> = {},
): Promise<ChargeView> {
  const { view, audit, event } = changeRecords(charge, action, extra);
  await insertAuditEvent(tx, actor, audit);
  await insertEvent(tx, event);
  metrics.charges.inc({ status: charge.status });
  return view;
}

export type ChargeParties = Awaited<ReturnType<typeof chargeParties>>;

/** The ledger accounts a captured charge credits (created on first use, outside the caller's transaction). */
export async function chargeParties(
  ledger: LedgerService,
  merchantId: string,
  carrierId: string,
  currency: string,
) {
  const [merchant, carrier, fees] = await Promise.all([
    ledger.partyAccount('merchant_payable', merchantId, currency),
    ledger.partyAccount('carrier_share', carrierId, currency),
    ledger.partyAccount('gateway_fees', GATEWAY_OWNER, currency),
  ]);
  return { merchant, carrier, fees };
}

/** The merchant's charge, row-locked for a state change; another merchant's is not found. */
export async function lockCharge(
  tx: PoolClient,
  merchantId: string,
  chargeId: string,
): Promise<ChargeRow> {
  const charge = await repo.findCharge(tx, chargeId, { merchantId, forUpdate: true });
  if (!charge) throw new AppError('not_found', `No charge ${chargeId}.`);
  return charge;
}

/** Ends a charge that holds money without moving any: releases the hold and forgets its code. */
export async function releaseCharge(
  tx: PoolClient,
  ledger: LedgerService,
  chargeId: string,
  change:
    | { status: 'cancelled'; cancellation_reason: string }
    | { status: 'denied'; denial_code: DenialCode },
): Promise<ChargeRow> {
  await ledger.releaseHold(tx, chargeId);
  await repo.deleteOtp(tx, chargeId);
  return repo.updateChargeState(tx, chargeId, { ...change, amount_held: 0n });
}

/** Posts `amount` of a charge's hold (the rest is released) with the revenue split, and marks it succeeded. */
export async function captureHold(
  tx: PoolClient,
  ledger: LedgerService,
  charge: ChargeRow,
  amount: bigint,
  accounts: ChargeParties,
  subscriberAccount: string,
): Promise<ChargeRow> {
  const split = splitRevenue(amount, charge.revenue_share_bps, charge.fee_bps);
  await ledger.postHold(
    tx,
    charge.id,
    {
      kind: 'capture',
      referenceId: charge.id,
      currency: charge.currency,
      legs: captureLegs(subscriberAccount, accounts, amount, split),
    },
    amount,
  );
  return repo.updateChargeState(tx, charge.id, {
    status: 'succeeded',
    amount_held: 0n,
    amount_captured: amount,
    split,
    captured: true,
  });
}

/** A charge request that passed the refusals (merchant active, subscriber known, currency right). */
export interface ChargeAttempt {
  actor: Actor;
  merchant: MerchantRow;
  subscriber: SubscriberRow;
  carrier: CarrierRow;
  accounts: ChargeParties;
  input: CreateChargeInput;
  amount: bigint;
  idem: IdempotentRequest;
}

/** The fields of a new charge that do not depend on how it ends. */
export function chargeBase(a: ChargeAttempt, id: string) {
  return {
    id,
    merchant_id: a.merchant.id,
    carrier_id: a.carrier.id,
    subscriber_id: a.subscriber.id,
    msisdn: a.subscriber.msisdn,
    funding_type: a.subscriber.funding_type,
    capture: a.input.capture ?? true,
    amount: a.amount,
    currency: a.carrier.currency,
    revenue_share_bps: a.carrier.revenue_share_bps,
    fee_bps: a.merchant.fee_bps,
    description: a.input.description,
    merchant_reference: a.input.merchant_reference ?? null,
    metadata: a.input.metadata ?? null,
  };
}

/** What a denied charge records beyond its base: nothing held, captured or split. */
export function deniedFields(code: DenialCode) {
  return {
    status: 'denied' as const,
    amount_held: 0n,
    amount_captured: 0n,
    carrier_share: null,
    gateway_fee: null,
    merchant_net: null,
    denial_code: code,
  };
}

/**
 * Thrown when a port completed between resolving a number and locking its holder's account:
 * nothing was written, and the charge is attempted again against the number's new holder.
 */
export class NumberPorted extends Error {
  constructor() {
    super('The number was ported while the charge was being made.');
    this.name = 'NumberPorted';
  }
}

/** The denial a charge gets whatever the subscriber's balance, or null (checked in this order). */
export function denialBeforeBalance(a: ChargeAttempt): DenialCode | null {
  if (a.subscriber.status === 'barred') return 'subscriber_barred';
  if (a.subscriber.status === 'suspended') return 'subscriber_suspended';
  return perTransactionDenial(a, a.amount, a.carrier.currency);
}

/** The denial of a charge the subscriber's balance does not cover. */
export function shortfallDenial(subscriber: Pick<SubscriberRow, 'funding_type'>): DenialCode {
  return subscriber.funding_type === 'prepaid' ? 'insufficient_funds' : 'credit_limit_exceeded';
}
