import type { Pool, PoolClient } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import type { Metrics } from '../../metrics.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import type {
  IdempotencyService,
  IdempotentRequest,
  Outcome,
  StoredOutcome,
} from '../idempotency/idempotency-service.js';
import type { LedgerService } from '../ledger/ledger-service.js';
import { findMerchant } from '../merchants/merchants-repo.js';
import { OTP_MAX_ATTEMPTS, otpMatches } from './charges-consent.js';
import { countWrongCode, lockNumberForConfirm, type NumberOtpPolicy } from './charges-otp-lock.js';
import * as repo from './charges-repo.js';
import {
  captureHold,
  chargeParties,
  denialOutcome,
  invalidState,
  lockCharge,
  problemOutcome,
  recordChange,
  releaseCharge,
  type ChargeParties,
} from './charges-shared.js';
import type { ChargeRow, DenialCode } from './charges-types.js';

export interface ConfirmDeps {
  pool: Pool;
  ledger: LedgerService;
  idempotency: IdempotencyService;
  metrics: Pick<Metrics, 'charges'>;
  otpSecret: Buffer;
  reservationTtlSeconds: number;
  numberOtp: NumberOtpPolicy;
}

/**
 * `POST /v1/charges/{id}/confirm` (SPEC §4.4). Every answer is a returned outcome rather than a
 * thrown error wherever state changes with it: a wrong code's attempt count, the denial after the
 * last attempt and the cancellation of an expired code must commit (a thrown business error rolls
 * back to the idempotency savepoint).
 */
export function createConfirmCharge(deps: ConfirmDeps) {
  const { pool, ledger, idempotency, metrics } = deps;

  async function deny(
    tx: PoolClient,
    actor: Actor,
    charge: ChargeRow,
    code: DenialCode,
    requestId: string,
  ): Promise<Outcome> {
    const row = await releaseCharge(tx, ledger, charge.id, { status: 'denied', denial_code: code });
    await recordChange(tx, metrics, actor, row, 'charge.denied', { denial_code: code });
    return denialOutcome(row, requestId);
  }

  async function expired(tx: PoolClient, actor: Actor, charge: ChargeRow, requestId: string) {
    const row = await releaseCharge(tx, ledger, charge.id, {
      status: 'cancelled',
      cancellation_reason: 'expired',
    });
    await recordChange(tx, metrics, actor, row, 'charge.expired', {
      expired_status: charge.status,
    });
    return problemOutcome(
      new AppError('invalid_state', 'The one-time code has expired; the charge is cancelled.', {
        extra: { charge_id: charge.id, current_status: row.status },
      }),
      requestId,
    );
  }

  async function wrongCode(tx: PoolClient, actor: Actor, charge: ChargeRow, requestId: string) {
    const attempts = await repo.recordOtpFailure(tx, charge.id);
    await countWrongCode(tx, deps.numberOtp, actor, charge);
    const remaining = Math.max(OTP_MAX_ATTEMPTS - attempts, 0);
    if (remaining === 0) return deny(tx, actor, charge, 'otp_attempts_exceeded', requestId);
    await insertAuditEvent(tx, actor, {
      action: 'charge.otp_rejected',
      objectType: 'charge',
      objectId: charge.id,
      summary: { attempts_remaining: remaining },
    });
    return problemOutcome(
      new AppError('otp_invalid', 'The one-time code is not right.', {
        param: 'code',
        extra: { charge_id: charge.id, attempts_remaining: remaining },
      }),
      requestId,
    );
  }

  /** The right code: capture (one step) or keep the hold as a reservation (two steps). */
  async function complete(
    tx: PoolClient,
    actor: Actor,
    charge: ChargeRow,
    accounts: ChargeParties,
    subscriberAccount: string,
  ): Promise<Outcome> {
    await repo.deleteOtp(tx, charge.id);
    const amount = BigInt(charge.amount_held);
    if (charge.capture) {
      const row = await captureHold(tx, ledger, charge, amount, accounts, subscriberAccount);
      return { status: 200, body: await recordChange(tx, metrics, actor, row, 'charge.confirmed') };
    }
    const merchant = await findMerchant(tx, charge.merchant_id);
    const row = await repo.updateChargeState(tx, charge.id, {
      status: 'reserved',
      reserved_until_seconds: merchant?.reservation_ttl_seconds ?? deps.reservationTtlSeconds,
    });
    return { status: 200, body: await recordChange(tx, metrics, actor, row, 'charge.confirmed') };
  }

  return async function confirmCharge(
    actor: Actor,
    merchantId: string,
    chargeId: string,
    input: { code: string },
    idem: IdempotentRequest,
  ): Promise<StoredOutcome> {
    // The ledger accounts are looked up before the transaction (it may create them on its own
    // connection); an unknown charge is a 404 that leaves the key free.
    const known = await repo.findCharge(pool, chargeId, { merchantId });
    if (!known) throw new AppError('not_found', `No charge ${chargeId}.`);
    const accounts = await chargeParties(
      ledger,
      known.merchant_id,
      known.carrier_id,
      known.currency,
    );
    return idempotency.run(idem, async (tx) => {
      const charge = await lockCharge(tx, merchantId, chargeId);
      if (charge.status !== 'pending_validation') throw invalidState(charge, 'confirm');
      const otp = await repo.findOtp(tx, charge.id);
      if (!otp || otp.expired) return expired(tx, actor, charge, idem.requestId);
      // A locked number's code is not even compared: the right one is refused like a guess, or
      // the lock would only slow the guessing. The charge cannot be confirmed before its code
      // expires, so it is denied at once and its hold released.
      if (await lockNumberForConfirm(tx, deps.numberOtp, charge.msisdn))
        return deny(tx, actor, charge, 'otp_locked', idem.requestId);
      if (!otpMatches(deps.otpSecret, charge.id, input.code, otp.code_hash))
        return wrongCode(tx, actor, charge, idem.requestId);
      // The subscriber may have opted out or been suspended while the code was on its way.
      const subscriber = await repo.findChargeSubscriber(tx, charge.subscriber_id);
      if (subscriber.status === 'barred')
        return deny(tx, actor, charge, 'subscriber_barred', idem.requestId);
      if (subscriber.status === 'suspended')
        return deny(tx, actor, charge, 'subscriber_suspended', idem.requestId);
      return complete(tx, actor, charge, accounts, subscriber.account_id);
    });
  };
}
