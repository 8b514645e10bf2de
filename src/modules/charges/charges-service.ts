import { toPage, type Page } from '../../http/pagination.js';
import type { Pool, PoolClient } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { SYSTEM_ACTOR } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import type { Metrics } from '../../metrics.js';
import type { Worker } from '../../workers/workers.js';
import type { CarrierRow } from '../carriers/carriers-types.js';
import {
  replayOf,
  type IdempotencyService,
  type IdempotentRequest,
  type Outcome,
  type StoredOutcome,
} from '../idempotency/idempotency-service.js';
import type { LedgerService } from '../ledger/ledger-service.js';
import type { MerchantRow } from '../merchants/merchants-types.js';
import { parseAmount, splitRevenue } from '../money/money.js';
import { insertSms } from '../sms/sms-repo.js';
import * as subscribersRepo from '../subscribers/subscribers-repo.js';
import type { SubscriberRow } from '../subscribers/subscribers-types.js';
import { createConfirmCharge } from './charges-confirm.js';
import {
  needsConsent,
  newOtpCode,
  otpHash,
  otpMessage,
  OTP_TTL_SECONDS,
} from './charges-consent.js';
import { pageOfCharges } from '../search/search-service.js';
import type { AdminChargeFilter } from '../search/search-types.js';
import { spendLimitDenial } from './charges-limits.js';
import { numberLocked, type NumberOtpPolicy } from './charges-otp-lock.js';
import { createOneStepCharge } from './charges-one-step.js';
import * as repo from './charges-repo.js';
import {
  captureHold,
  captureLegs,
  chargeBase,
  chargeParties,
  denialBeforeBalance,
  deniedFields,
  denialOutcome,
  invalidState,
  lockCharge,
  NumberPorted,
  recordChange as recordChargeChange,
  releaseCharge,
  shortfallDenial,
  type ChargeAttempt,
} from './charges-shared.js';
import {
  toChargeView,
  type ChargeRow,
  type ChargeView,
  type CreateChargeInput,
  type DenialCode,
} from './charges-types.js';

export interface ChargeAttemptOptions {
  /**
   * Runs once it is known that the request is not a replay of a finished one and will not be
   * refused, before anything is written; a throw leaves the key free. For the subscriber's charge
   * velocity, which counts attempts per idempotency key, so a duplicate of an attempt that is
   * still running does not count twice.
   */
  beforeExecute?: () => Promise<unknown>;
}

export interface ChargesService {
  createCharge(
    actor: Actor,
    merchantId: string,
    input: CreateChargeInput,
    idem: IdempotentRequest,
    options?: ChargeAttemptOptions,
  ): Promise<StoredOutcome>;
  /** SPEC §4.4 consent: checks the one-time code of a pending_validation charge. */
  confirmCharge(
    actor: Actor,
    merchantId: string,
    chargeId: string,
    input: { code: string },
    idem: IdempotentRequest,
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
  /** The merchant's charges, newest first (the admin search's query, scoped to the merchant). */
  listCharges(
    filter: AdminChargeFilter & { merchantId: string },
    page: { limit: number; startingAfter?: string },
  ): Promise<Page<ChargeView>>;
  /**
   * Cancels reservations past their time and pending consents past their code's expiry (database
   * time), releasing their holds; several instances may run it.
   */
  expiryWorker(): Worker;
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
  /** Key of the one-time code hashes (see resolveOtpSecret). */
  otpSecret: Buffer;
  /** Wrong codes allowed per number across all charges (SPEC §10). */
  numberOtp: NumberOtpPolicy;
}): ChargesService {
  const { pool, ledger, idempotency, metrics } = deps;
  const executeOneStep = createOneStepCharge({ pool, metrics });
  const parties = (merchantId: string, carrierId: string, currency: string) =>
    chargeParties(ledger, merchantId, carrierId, currency);
  const recordChange = (
    tx: PoolClient,
    actor: Actor,
    charge: ChargeRow,
    action: string,
    extra: Record<string, unknown> = {},
  ) => recordChargeChange(tx, metrics, actor, charge, action, extra);

  async function expire(tx: PoolClient, charge: ChargeRow): Promise<void> {
    const row = await releaseCharge(tx, ledger, charge.id, {
      status: 'cancelled',
      cancellation_reason: 'expired',
    });
    await recordChange(
      tx,
      SYSTEM_ACTOR(charge.status === 'reserved' ? 'reservation-expiry' : 'consent-expiry'),
      row,
      'charge.expired',
      { expired_status: charge.status },
    );
  }

  return {
    async createCharge(actor, merchantId, input, idem, options = {}) {
      // The velocity counts an attempt once, however often a port sends it round again.
      let counted = false;
      const beforeExecute = async () => {
        if (counted || !options.beforeExecute) return;
        counted = true;
        await options.beforeExecute();
      };
      for (let pass = 0; ; pass++) {
        try {
          return await attemptCharge(actor, merchantId, input, idem, beforeExecute);
        } catch (err) {
          if (!(err instanceof NumberPorted)) throw err;
          // A number ports rarely: a second completion within these passes is not a real case.
          if (pass >= 2) {
            throw new AppError('service_unavailable', 'The number is being ported; retry.', {
              headers: { 'Retry-After': '1' },
            });
          }
        }
      }
    },

    confirmCharge: createConfirmCharge({
      pool,
      ledger,
      idempotency,
      metrics,
      otpSecret: deps.otpSecret,
      reservationTtlSeconds: deps.reservationTtlSeconds,
      numberOtp: deps.numberOtp,
    }),

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
        const accounts = await parties(charge.merchant_id, charge.carrier_id, charge.currency);
        const { account_id: subscriberAccount } = await repo.findChargeSubscriber(
          tx,
          charge.subscriber_id,
        );
        const row = await captureHold(tx, ledger, charge, amount, accounts, subscriberAccount);
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
        const row = await releaseCharge(tx, ledger, charge.id, {
          status: 'cancelled',
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

    async listCharges(filter, page) {
      const rows = await pageOfCharges(pool, filter, page);
      return toPage(rows, page.limit, toChargeView);
    },

    expiryWorker: () => ({
      name: 'reservation-expiry',
      runOnce: () =>
        withTransaction(pool, async (tx) => {
          const due = [
            ...(await repo.lockExpiredReservations(tx, 100)),
            ...(await repo.lockExpiredConsents(tx, 100)),
          ];
          for (const charge of due) await expire(tx, charge);
          const quiet = await repo.deleteQuietNumberOtpFailures(
            tx,
            deps.numberOtp.windowSeconds,
            100,
          );
          return due.length + quiet;
        }),
    }),
  };

  /** One attempt at a new charge against the number's holder as resolved now. */
  async function attemptCharge(
    actor: Actor,
    merchantId: string,
    input: CreateChargeInput,
    idem: IdempotentRequest,
    beforeExecute: () => Promise<void>,
  ): Promise<StoredOutcome> {
    const amount = parseAmount(input.amount, input.currency);
    const { merchant, subscriber, carrier, stored } = await repo.loadChargeAttempt(
      pool,
      merchantId,
      input.msisdn,
      idem,
    );
    // A retry of a finished charge replays its answer, whatever changed since (a merchant
    // suspended since): nothing else is looked at, and the velocity is not counted again.
    if (stored) return replayOf(idem, stored);
    if (!merchant) throw new AppError('forbidden', 'This key has no merchant.');
    // Refusals record nothing; going through the key stores the ones that are business
    // outcomes (currency_mismatch) and leaves the key free for the others.
    const refusal = chargeRefusal(merchant, subscriber, carrier, input);
    if (refusal || !subscriber || !carrier) {
      return idempotency.run(idem, () => Promise.reject(refusal ?? new Error('unreachable')));
    }
    await beforeExecute();
    const attempt: ChargeAttempt = {
      actor,
      merchant,
      subscriber,
      carrier,
      accounts: await parties(merchantId, carrier.id, carrier.currency),
      input,
      amount,
      idem,
    };
    const oneStep = (input.capture ?? true) && !needsConsent(merchant, carrier, amount);
    if (oneStep) return executeOneStep(attempt);
    return idempotency.run(idem, (tx) => executeCharge(tx, attempt));
  }

  async function executeCharge(tx: PoolClient, a: ChargeAttempt): Promise<Outcome> {
    const { actor, merchant, subscriber, carrier, accounts, amount } = a;
    const base = chargeBase(a, newId('ch'));
    const deny = async (code: DenialCode): Promise<Outcome> => {
      const row = await repo.insertCharge(tx, {
        ...base,
        ...deniedFields(code),
        reserved_until_seconds: null,
      });
      await recordChange(tx, actor, row, 'charge.denied', { denial_code: code });
      return denialOutcome(row, a.idem.requestId);
    };

    const decided = denialBeforeBalance(a);
    if (decided) return deny(decided);
    // Before anything reads or moves the balance: the holder's account lock, and a check that no
    // port completion made the record ported_out since the number was resolved.
    if (!(await subscribersRepo.lockHeldSubscriber(tx, subscriber))) throw new NumberPorted();
    const consent = needsConsent(merchant, carrier, amount);
    if (consent && (await numberLocked(tx, deps.numberOtp, subscriber.msisdn)))
      return deny('otp_locked');
    const overLimit = await spendLimitDenial(tx, a, amount);
    if (overLimit) return deny(overLimit);
    const shortfall = shortfallDenial(subscriber);

    if (base.capture && !consent) {
      const split = splitRevenue(amount, carrier.revenue_share_bps, merchant.fee_bps);
      const moved = await ledger.post(tx, {
        kind: 'capture',
        referenceId: base.id,
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

    // A reservation and a charge awaiting consent both hold the amount (the hold id is the charge id).
    const held = await ledger.hold(tx, base.id, { id: subscriber.account_id, hot: false }, amount);
    if (!held) return deny(shortfall);
    const row = await repo.insertCharge(tx, {
      ...base,
      status: consent ? 'pending_validation' : 'reserved',
      amount_held: amount,
      amount_captured: 0n,
      carrier_share: null,
      gateway_fee: null,
      merchant_net: null,
      denial_code: null,
      reserved_until_seconds: consent
        ? null
        : (merchant.reservation_ttl_seconds ?? deps.reservationTtlSeconds),
    });
    if (consent) await sendConsentCode(tx, merchant, carrier, row);
    return { status: 201, body: await recordChange(tx, actor, row, `charge.${row.status}`) };
  }

  /**
   * Stores the code's keyed hash and queues the SMS carrying the code itself, both in the charge's
   * transaction: the SMS goes out only after commit, from the outbox, and the code is never kept
   * anywhere else.
   */
  async function sendConsentCode(
    tx: PoolClient,
    merchant: MerchantRow,
    carrier: CarrierRow,
    charge: ChargeRow,
  ): Promise<void> {
    const code = newOtpCode();
    await repo.insertOtp(tx, charge.id, otpHash(deps.otpSecret, charge.id, code), OTP_TTL_SECONDS);
    await insertSms(tx, {
      id: newId('sms'),
      chargeId: charge.id,
      carrierId: carrier.id,
      msisdn: charge.msisdn,
      message: otpMessage(merchant.name, BigInt(charge.amount), charge.currency, code),
      validSeconds: OTP_TTL_SECONDS,
    });
  }
}
