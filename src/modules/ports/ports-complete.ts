import type { PoolClient } from '../../db/pool.js';
import { pgCode } from '../../db/errors.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import type { Metrics } from '../../metrics.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as carriersRepo from '../carriers/carriers-repo.js';
import * as chargesRepo from '../charges/charges-repo.js';
import { recordChange, releaseCharge } from '../charges/charges-shared.js';
import type { ChargeRow } from '../charges/charges-types.js';
import type { LedgerService } from '../ledger/ledger-service.js';
import * as subscribersRepo from '../subscribers/subscribers-repo.js';
import { subscriberFloor } from '../subscribers/subscribers-types.js';
import * as repo from './ports-repo.js';
import type { PortRow } from './ports-types.js';

/**
 * The set of charges holding money on the losing record changed while the completion waited for
 * the account lock, and one of the new ones is locked by a transaction that may be waiting for
 * that same lock. Carries a serialization failure's SQLSTATE so withTransaction runs the whole
 * completion again (rather than both sides waiting for the deadlock detector).
 */
class OpenChargesChanged extends Error {
  readonly code = '40001';
  constructor() {
    super('Charges holding money on the losing record changed during the port completion.');
  }
}

/**
 * Completes a port inside the caller's transaction; the caller holds the port's row lock and has
 * checked that it is open. Lock order, the same as every other path that touches these rows:
 * the losing record (NO KEY UPDATE, so charges may still reference it), its open charges (as
 * capture, cancel, confirm and expiry do, charge before account), then its account row (the lock
 * every charge path takes before it reads or moves the balance, and after which it re-reads the
 * record's status). Everything below commits at once or not at all.
 */
export async function completePortIn(
  tx: PoolClient,
  deps: { ledger: LedgerService; metrics: Pick<Metrics, 'charges'> },
  actor: Actor,
  port: PortRow,
): Promise<PortRow> {
  const { ledger, metrics } = deps;
  await repo.lockSubscriberRecord(tx, port.losing_subscriber_id);
  const losing = await subscribersRepo.findSubscriberById(tx, port.losing_subscriber_id);
  if (!losing || losing.status === 'ported_out') {
    throw new AppError('internal_error', `Port ${port.id}: the losing record no longer holds it.`);
  }
  const [losingCarrier, gainingCarrier] = await Promise.all([
    carriersRepo.findCarrier(tx, port.losing_carrier_id),
    carriersRepo.findCarrier(tx, port.gaining_carrier_id),
  ]);
  if (!losingCarrier || !gainingCarrier) throw new Error(`Port ${port.id}: a carrier is missing.`);

  const open: ChargeRow[] = await chargesRepo.lockOpenChargesOf(tx, losing.id);
  await chargesRepo.lockSubscriberAccount(tx, losing.account_id);
  // Charges created between the first pass and the account lock; none can appear after it.
  try {
    open.push(
      ...(await chargesRepo.lockOpenChargesOf(tx, losing.id, {
        except: open.map((c) => c.id),
        noWait: true,
      })),
    );
  } catch (err) {
    if (pgCode(err) === '55P03') throw new OpenChargesChanged();
    throw err;
  }

  for (const charge of open) {
    const row = await releaseCharge(tx, ledger, charge.id, {
      status: 'cancelled',
      cancellation_reason: 'ported',
    });
    await recordChange(tx, metrics, actor, row, 'charge.cancelled', {
      cancelled_status: charge.status,
      reason: 'ported',
      port_id: port.id,
    });
  }

  const portedOut = await subscribersRepo.markPortedOut(tx, losing.id);
  const account = { id: losing.account_id, hot: false };
  const balance = await ledger.balance(tx, account);
  // A prepaid balance is the subscriber's money held by the losing carrier: it goes back to
  // that carrier's funding account (the account top-ups are drawn from). A postpaid record's
  // unbilled spend stays on it, for the losing carrier's last bill.
  const returned = losing.funding_type === 'prepaid' && balance.posted > 0n ? balance.posted : 0n;
  if (returned > 0n) {
    const funding = await ledger.partyAccount(
      'carrier_funding',
      losingCarrier.id,
      losingCarrier.currency,
    );
    const moved = await ledger.post(tx, {
      kind: 'port_out',
      referenceId: port.id,
      currency: losingCarrier.currency,
      legs: [
        { account, amount: -returned },
        { account: funding, amount: returned },
      ],
    });
    if (!moved) throw new AppError('internal_error', `Port ${port.id}: balance did not move.`);
  }
  // Read-only history from now on: the one-step charge statement refuses to debit it.
  await chargesRepo.closeSubscriberAccount(tx, losing.account_id);
  await insertAuditEvent(tx, actor, {
    action: 'subscriber.ported_out',
    objectType: 'subscriber',
    objectId: portedOut.id,
    summary: {
      msisdn: maskMsisdn(port.msisdn),
      port_id: port.id,
      previous_status: losing.status,
      cancelled_charges: open.length,
      returned_balance: returned.toString(),
      currency: losingCarrier.currency,
    },
  });

  // The new holder's record starts at zero, with nothing of the old one's history or limits.
  const id = newId('sub');
  const opened = await ledger.openSubscriberAccount(
    tx,
    id,
    gainingCarrier.currency,
    subscriberFloor(port.funding_type, 0n),
  );
  const gaining = await subscribersRepo.insertSubscriber(tx, {
    id,
    carrier_id: gainingCarrier.id,
    msisdn: port.msisdn,
    funding_type: port.funding_type,
    status: 'active',
    credit_limit: '0',
    account_id: opened.id,
  });
  await insertAuditEvent(tx, actor, {
    action: 'subscriber.created',
    objectType: 'subscriber',
    objectId: gaining.id,
    summary: {
      msisdn: maskMsisdn(port.msisdn),
      funding_type: gaining.funding_type,
      status: gaining.status,
      credit_limit: gaining.credit_limit,
      port_id: port.id,
    },
  });

  return repo.updatePort(tx, port.id, {
    status: 'completed',
    closed: true,
    gainingSubscriberId: gaining.id,
    returnedBalance: returned,
    cancelledCharges: open.length,
  });
}
