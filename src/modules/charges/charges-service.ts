import type { Pool, PoolClient } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { SYSTEM_ACTOR } from '../../http/context.js';
import { problemBody } from '../../http/problem.js';
import { newId } from '../../lib/ids.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import type { Metrics } from '../../metrics.js';
import type { Worker } from '../../workers/workers.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import type { CarrierRow } from '../carriers/carriers-types.js';
import { insertEvent, type EventType } from '../events/events-repo.js';
import type {
  IdempotencyService,
  IdempotentRequest,
  Outcome,
  RunOptions,
  StoredOutcome,
} from '../idempotency/idempotency-service.js';
import { GATEWAY_OWNER, type LedgerService } from '../ledger/ledger-service.js';
import type { Leg } from '../ledger/ledger-types.js';
import type { MerchantRow } from '../merchants/merchants-types.js';
import { parseAmount, splitRevenue, type RevenueSplit } from '../money/money.js';
import type { SubscriberRow } from '../subscribers/subscribers-types.js';
import * as repo from './charges-repo.js';
import {
  toChargeView,
  type ChargeRow,
  type ChargeView,
  type CreateChargeInput,
  type DenialCode,
} from './charges-types.js';

export interface ChargesService {
  createCharge(
    actor: Actor,
    merchantId: string,
    input: CreateChargeInput,
    idem: IdempotentRequest,
    options?: RunOptions,
  ): Promise<StoredOutcome>;
  captureCharge(
    actor: Actor,
    merchantId: string,
    chargeId: string,
    input: { amount?: string },
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  cancelCharge(
    actor: Actor,
    merchantId: string,
    chargeId: string,
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  getCharge(merchantId: string | undefined, chargeId: string): Promise<ChargeView>;
  listCharges(filter: repo.ChargeFilter): Promise<{ rows: ChargeView[]; hasMore: boolean }>;
  /** Cancels reservations whose time has passed (database time); several instances may run it. */
  expiryWorker(): Worker;
}

const DENIAL_MESSAGES: Record<DenialCode, string> = {
  insufficient_funds: 'The subscriber’s prepaid balance does not cover this charge.',
  credit_limit_exceeded: 'The charge would take the subscriber past their credit limit.',
  limit_per_transaction_exceeded: 'The amount exceeds the per-transaction limit.',
  limit_daily_exceeded: 'The charge would exceed the subscriber’s daily spend limit.',
  limit_monthly_exceeded: 'The charge would exceed the subscriber’s monthly spend limit.',
  subscriber_barred: 'The subscriber has opted out of carrier billing.',
  subscriber_suspended: 'The subscriber’s account is suspended.',
  otp_attempts_exceeded: 'Too many wrong one-time codes.',
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

/** Why a charge may not even be attempted (nothing is recorded), or undefined. */
function chargeRefusal(
  merchant: MerchantRow,
  subscriber: SubscriberRow | undefined,
  carrier: CarrierRow | undefined,
  input: CreateChargeInput,
): AppError | undefined {
  if (merchant.status !== 'active') {
    return new AppError(
      'merchant_suspended',
      'This merchant is suspended and cannot create charges.',
    );
  }
  if (!subscriber || !carrier) {
    return new AppError('subscriber_not_found', `No subscriber ${maskMsisdn(input.msisdn)}.`, {
      param: 'msisdn',
    });
  }
  if (carrier.currency !== input.currency) {
    return new AppError(
      'currency_mismatch',
      `The subscriber's account is in ${carrier.currency}.`,
      {
        param: 'currency',
      },
    );
  }
  return undefined;
}

export function createChargesService(deps: {
  pool: Pool;
  ledger: LedgerService;
  idempotency: IdempotencyService;
  metrics: Metrics;
  reservationTtlSeconds: number;
}): ChargesService {
  const { pool, ledger, idempotency, metrics } = deps;

  async function parties(merchantId: string, carrierId: string, currency: string) {
    const [merchant, carrier, fees] = await Promise.all([
      ledger.partyAccount('merchant_payable', merchantId, currency),
      ledger.partyAccount('carrier_share', carrierId, currency),
      ledger.partyAccount('gateway_fees', GATEWAY_OWNER, currency),
    ]);
    return { merchant, carrier, fees };
  }

  /** Records the change's audit event and merchant event; both commit with the change. */
  async function recordChange(
    tx: PoolClient,
    actor: Actor,
    charge: ChargeRow,
    action: string,
    extra: Record<string, unknown> = {},
  ) {
    const view = toChargeView(charge);
    await insertAuditEvent(tx, actor, {
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
    });
    await insertEvent(tx, {
      merchantId: charge.merchant_id,
      type: EVENT_FOR_STATUS[charge.status],
      subjectId: charge.id,
      data: view as unknown as Record<string, unknown>,
    });
    metrics.charges.inc({ status: charge.status });
    return view;
  }

  function denialOutcome(charge: ChargeRow, requestId: string): Outcome {
    const code = charge.denial_code!;
    const err = new AppError('payment_denied', DENIAL_MESSAGES[code], {
      extra: { code, charge_id: charge.id, denial_code: code },
    });
    return {
      status: 402,
      body: problemBody(err, requestId),
      contentType: 'application/problem+json',
    };
  }

  async function lockCharge(
    tx: PoolClient,
    merchantId: string,
    chargeId: string,
  ): Promise<ChargeRow> {
    const charge = await repo.findCharge(tx, chargeId, { merchantId, forUpdate: true });
    if (!charge) throw new AppError('not_found', `No charge ${chargeId}.`);
    return charge;
  }

  function invalidState(charge: ChargeRow, action: string): AppError {
    return new AppError('invalid_state', `Cannot ${action} a charge that is ${charge.status}.`, {
      extra: { charge_id: charge.id, current_status: charge.status },
    });
  }

  async function expire(tx: PoolClient, charge: ChargeRow): Promise<void> {
    await ledger.releaseHold(tx, charge.id);
    const row = await repo.updateChargeState(tx, charge.id, {
      status: 'cancelled',
      amount_held: 0n,
      cancellation_reason: 'expired',
    });
    await recordChange(tx, SYSTEM_ACTOR('reservation-expiry'), row, 'charge.expired');
  }

  return {
    async createCharge(actor, merchantId, input, idem, options) {
      const amount = parseAmount(input.amount, input.currency);
      const { merchant, subscriber, carrier } = await repo.loadChargeParties(
        pool,
        merchantId,
        input.msisdn,
      );
      if (!merchant) throw new AppError('forbidden', 'This key has no merchant.');
      // Refusals that depend on state which may change after a charge succeeded (a merchant
      // suspended since) still go through the key first, so a retry of a finished charge replays
      // its answer; the refusal itself is not stored and leaves the key free.
      const refusal = chargeRefusal(merchant, subscriber, carrier, input);
      if (refusal || !subscriber || !carrier) {
        return idempotency.run(idem, () => Promise.reject(refusal ?? new Error('unreachable')));
      }
      const accounts = await parties(merchantId, carrier.id, carrier.currency);
      return idempotency.run(
        idem,
        (tx) =>
          executeCharge(
            tx,
            actor,
            merchant,
            subscriber,
            carrier,
            accounts,
            input,
            amount,
            idem.requestId,
          ),
        options,
      );
    },

    async captureCharge(actor, merchantId, chargeId, input, idem) {
      return idempotency.run(idem, async (tx) => {
        const charge = await lockCharge(tx, merchantId, chargeId);
        if (charge.status !== 'reserved') throw invalidState(charge, 'capture');
        if (charge.reserved_until && charge.reserved_until.getTime() <= Date.now()) {
          throw new AppError('invalid_state', 'The reservation has expired.', {
            extra: { charge_id: charge.id, current_status: charge.status },
          });
        }
        const held = BigInt(charge.amount_held);
        const amount =
          input.amount === undefined ? held : parseAmount(input.amount, charge.currency);
        if (amount > held) {
          throw new AppError('invalid_amount', 'Cannot capture more than the reserved amount.', {
            param: 'amount',
          });
        }
        const split = splitRevenue(amount, charge.revenue_share_bps, charge.fee_bps);
        const accounts = await parties(charge.merchant_id, charge.carrier_id, charge.currency);
        const subscriberAccount = await subscriberAccountOf(tx, charge.subscriber_id);
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
        const row = await repo.updateChargeState(tx, charge.id, {
          status: 'succeeded',
          amount_held: 0n,
          amount_captured: amount,
          split,
          captured: true,
        });
        return {
          status: 200,
          body: await recordChange(tx, actor, row, 'charge.captured', {
            captured: amount.toString(),
            released: (held - amount).toString(),
          }),
        };
      });
    },

    async cancelCharge(actor, merchantId, chargeId, idem) {
      return idempotency.run(idem, async (tx) => {
        const charge = await lockCharge(tx, merchantId, chargeId);
        if (charge.status !== 'reserved' && charge.status !== 'pending_validation')
          throw invalidState(charge, 'cancel');
        await ledger.releaseHold(tx, charge.id);
        const row = await repo.updateChargeState(tx, charge.id, {
          status: 'cancelled',
          amount_held: 0n,
          cancellation_reason: 'requested_by_merchant',
        });
        return { status: 200, body: await recordChange(tx, actor, row, 'charge.cancelled') };
      });
    },

    async getCharge(merchantId, chargeId) {
      const row = await repo.findCharge(pool, chargeId, { merchantId });
      if (!row) throw new AppError('not_found', `No charge ${chargeId}.`);
      return toChargeView(row);
    },

    async listCharges(filter) {
      const rows = await repo.listCharges(pool, filter);
      return {
        rows: rows.slice(0, filter.limit).map(toChargeView),
        hasMore: rows.length > filter.limit,
      };
    },

    expiryWorker: () => ({
      name: 'reservation-expiry',
      runOnce: () =>
        withTransaction(pool, async (tx) => {
          const due = await repo.lockExpiredReservations(tx, 100);
          for (const charge of due) await expire(tx, charge);
          return due.length;
        }),
    }),
  };

  async function subscriberAccountOf(tx: PoolClient, subscriberId: string): Promise<string> {
    const { rows } = await tx.query<{ account_id: string }>(
      'SELECT account_id FROM subscribers WHERE id = $1',
      [subscriberId],
    );
    return rows[0]!.account_id;
  }

  async function executeCharge(
    tx: PoolClient,
    actor: Actor,
    merchant: MerchantRow,
    subscriber: SubscriberRow,
    carrier: CarrierRow,
    accounts: Awaited<ReturnType<typeof parties>>,
    input: CreateChargeInput,
    amount: bigint,
    requestId: string,
  ): Promise<Outcome> {
    const capture = input.capture ?? true;
    const id = newId('ch');
    const base = {
      id,
      merchant_id: merchant.id,
      carrier_id: carrier.id,
      subscriber_id: subscriber.id,
      msisdn: subscriber.msisdn,
      funding_type: subscriber.funding_type,
      capture,
      amount,
      currency: carrier.currency,
      revenue_share_bps: carrier.revenue_share_bps,
      fee_bps: merchant.fee_bps,
      description: input.description,
      merchant_reference: input.merchant_reference ?? null,
      metadata: input.metadata ?? null,
    };
    const deny = async (code: DenialCode): Promise<Outcome> => {
      const row = await repo.insertCharge(tx, {
        ...base,
        status: 'denied',
        amount_held: 0n,
        amount_captured: 0n,
        carrier_share: null,
        gateway_fee: null,
        merchant_net: null,
        denial_code: code,
        reserved_until_seconds: null,
      });
      await recordChange(tx, actor, row, 'charge.denied', { denial_code: code });
      return denialOutcome(row, requestId);
    };

    if (subscriber.status === 'barred') return deny('subscriber_barred');
    if (subscriber.status === 'suspended') return deny('subscriber_suspended');
    const shortfall: DenialCode =
      subscriber.funding_type === 'prepaid' ? 'insufficient_funds' : 'credit_limit_exceeded';

    if (capture) {
      const split = splitRevenue(amount, carrier.revenue_share_bps, merchant.fee_bps);
      const moved = await ledger.post(tx, {
        kind: 'capture',
        referenceId: id,
        currency: carrier.currency,
        legs: captureLegs(subscriber.account_id, accounts, amount, split),
      });
      if (!moved) return deny(shortfall);
      const row = await repo.insertCharge(tx, {
        ...base,
        status: 'succeeded',
        amount_held: 0n,
        amount_captured: amount,
        carrier_share: split.carrierShare,
        gateway_fee: split.gatewayFee,
        merchant_net: split.merchantNet,
        denial_code: null,
        reserved_until_seconds: null,
      });
      return { status: 201, body: await recordChange(tx, actor, row, 'charge.succeeded') };
    }

    const held = await ledger.hold(tx, id, { id: subscriber.account_id, hot: false }, amount);
    if (!held) return deny(shortfall);
    const row = await repo.insertCharge(tx, {
      ...base,
      status: 'reserved',
      amount_held: amount,
      amount_captured: 0n,
      carrier_share: null,
      gateway_fee: null,
      merchant_net: null,
      denial_code: null,
      reserved_until_seconds: merchant.reservation_ttl_seconds ?? deps.reservationTtlSeconds,
    });
    return { status: 201, body: await recordChange(tx, actor, row, 'charge.reserved') };
  }
}
