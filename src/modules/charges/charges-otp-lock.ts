/*
 * SPEC §10: besides 3 tries per charge, at most `maxFailures` wrong codes per number within the
 * window, across every charge and merchant. The count lives in PostgreSQL, in a row per number
 * locked by the confirm's own transaction (after the charge's row): it is exact under concurrent
 * confirms, commits or rolls back with the attempt it counts, and does not depend on Redis, which
 * carries only request rate limits.
 */

import type { PoolClient } from '../../db/pool.js';
import type { Actor } from '../../http/context.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { insertCarrierEvent } from '../events/carrier-events-repo.js';
import * as repo from './charges-repo.js';
import type { ChargeRow } from './charges-types.js';

export type { NumberOtpPolicy } from './charges-repo.js';

/**
 * Locks the number's count for this confirm and says until when the number is locked (null: the
 * code may be checked).
 */
export async function lockNumberForConfirm(
  tx: PoolClient,
  policy: repo.NumberOtpPolicy,
  msisdn: string,
): Promise<Date | null> {
  return (await repo.lockNumberOtpFailures(tx, msisdn, policy)).locked_until;
}

/**
 * Counts a wrong code against the charge's number (whose row lockNumberForConfirm holds). The
 * wrong code that reaches the limit locks the number: that is audited and announced to the
 * number's carrier, in the same transaction.
 */
export async function countWrongCode(
  tx: PoolClient,
  policy: repo.NumberOtpPolicy,
  actor: Actor,
  charge: ChargeRow,
): Promise<void> {
  const state = await repo.recordNumberOtpFailure(tx, charge.msisdn, policy);
  if (state.locked_until === null) return;
  const data = {
    failures: state.failures,
    window_seconds: policy.windowSeconds,
    locked_until: state.locked_until.toISOString(),
    charge_id: charge.id,
  };
  await insertAuditEvent(tx, actor, {
    action: 'subscriber.otp_locked',
    objectType: 'subscriber',
    objectId: charge.subscriber_id,
    summary: { ...data, msisdn: maskMsisdn(charge.msisdn), carrier_id: charge.carrier_id },
  });
  await insertCarrierEvent(tx, {
    carrierId: charge.carrier_id,
    type: 'subscriber.otp_locked',
    msisdn: charge.msisdn,
    data,
  });
}

/** For a new charge that needs a code: whether its number is locked (read without the row lock). */
export async function numberLocked(
  tx: PoolClient,
  policy: repo.NumberOtpPolicy,
  msisdn: string,
): Promise<boolean> {
  return (await repo.numberOtpLockedUntil(tx, msisdn, policy)) !== null;
}
