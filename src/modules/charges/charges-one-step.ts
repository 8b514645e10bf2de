import type { Pool } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import type { Metrics } from '../../metrics.js';
import { auditEventColumns } from '../audit/audit-repo.js';
import { eventColumns } from '../events/events-repo.js';
import {
  inProgressError,
  replayOf,
  storedForm,
  type Outcome,
  type StoredOutcome,
} from '../idempotency/idempotency-service.js';
import { prepareDebitJournal } from '../ledger/ledger-service.js';
import type { DebitJournal } from '../ledger/ledger-types.js';
import { splitRevenue } from '../money/money.js';
import { spendCaps } from './charges-limits.js';
import * as repo from './charges-repo.js';
import {
  captureLegs,
  chargeBase,
  changeRecords,
  denialBeforeBalance,
  deniedFields,
  denialOutcome,
  NumberPorted,
  shortfallDenial,
  type ChargeAttempt,
} from './charges-shared.js';
import type { ChargeRow, ChargeView, DenialCode } from './charges-types.js';

/**
 * A charge captured at once and without a consent code, executed as one statement (charges-repo
 * executeOneStepCharge) instead of a transaction of eleven or more — the statement also counts the
 * carrier's daily and monthly caps under the subscriber's lock, as the transactional path does:
 * the charge is built here with its audit event, merchant event and answer, and the statement
 * writes it with the debit and its journal transaction, under the request key's lock, in one
 * commit. When the balance does not cover the debit, or a cap would be passed, the statement
 * writes nothing, and a second one records the denial. The charge is dated by this process's
 * clock (its answer is built before the statement runs); the statement refuses one dated more than
 * charge_stamp_tolerance() before it began, which settlement relies on (migration 0011).
 */
export function createOneStepCharge(deps: { pool: Pool; metrics: Pick<Metrics, 'charges'> }) {
  const { pool, metrics } = deps;

  function complete(
    actor: Actor,
    charge: ChargeRow,
    action: string,
    outcome: (view: ChargeView) => Outcome,
    extra: Record<string, unknown> = {},
  ): repo.OneStepRecord {
    const { view, audit, event } = changeRecords(charge, action, extra);
    return {
      charge,
      auditEvent: auditEventColumns(actor, audit),
      event: eventColumns(event),
      response: storedForm(outcome(view)),
    };
  }

  async function execute(
    a: ChargeAttempt,
    journal: DebitJournal | null,
    record: repo.OneStepRecord,
    spendCaps?: repo.OneStepSpendCaps,
  ): Promise<StoredOutcome | DenialCode> {
    const result = await repo.executeOneStepCharge(pool, {
      request: a.idem,
      journal,
      record,
      spendCaps,
    });
    switch (result.outcome) {
      case 'in_progress':
        throw inProgressError();
      case 'stored':
        return replayOf(a.idem, result.stored);
      case 'below_floor':
        return shortfallDenial(a.subscriber);
      case 'limit_daily_exceeded':
      case 'limit_monthly_exceeded':
        return result.outcome;
      case 'ported':
        throw new NumberPorted();
      case 'stale':
        // Built long before a connection came free: nothing was written, the client may retry.
        throw new AppError('service_unavailable', 'The gateway is overloaded; retry the request.', {
          headers: { 'Retry-After': '1' },
        });
      case 'recorded':
        metrics.charges.inc({ status: record.charge.status });
        return { ...record.response, replayed: false };
    }
  }

  return async function executeOneStep(a: ChargeAttempt): Promise<StoredOutcome> {
    const base = chargeBase(a, newId('ch'));
    const at = new Date();
    const deny = async (code: DenialCode): Promise<StoredOutcome> => {
      const row = repo.newChargeRow({ ...base, ...deniedFields(code) }, a.carrier.code, at);
      const record = complete(
        a.actor,
        row,
        'charge.denied',
        () => denialOutcome(row, a.idem.requestId),
        { denial_code: code },
      );
      const answer = await execute(a, null, record);
      if (typeof answer === 'string') throw new Error('A denial moves no money.');
      return answer;
    };

    const decided = denialBeforeBalance(a);
    if (decided) return deny(decided);
    const split = splitRevenue(a.amount, a.carrier.revenue_share_bps, a.merchant.fee_bps);
    const journal = prepareDebitJournal({
      kind: 'capture',
      referenceId: base.id,
      currency: base.currency,
      legs: captureLegs(a.subscriber.account_id, a.accounts, a.amount, split),
    });
    const row = repo.newChargeRow(
      {
        ...base,
        status: 'succeeded',
        amount_held: 0n,
        amount_captured: a.amount,
        carrier_share: split.carrierShare,
        gateway_fee: split.gatewayFee,
        merchant_net: split.merchantNet,
        denial_code: null,
      },
      a.carrier.code,
      at,
    );
    const succeeded = complete(a.actor, row, 'charge.succeeded', (view) => ({
      status: 201,
      body: view,
    }));
    const caps = spendCaps(a.carrier, a.subscriber);
    const answer = await execute(
      a,
      journal,
      succeeded,
      caps
        ? {
            subscriberId: a.subscriber.id,
            timezone: a.carrier.timezone,
            dailyMax: caps.daily_max,
            monthlyMax: caps.monthly_max,
          }
        : undefined,
    );
    // Another request with this key may run between the two statements: the second then
    // finds its answer and replays it.
    return typeof answer === 'string' ? deny(answer) : answer;
  };
}
