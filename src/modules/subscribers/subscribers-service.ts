import type { Pool, PoolClient, Queryable } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as carriersRepo from '../carriers/carriers-repo.js';
import type { CarrierRow, FundingType } from '../carriers/carriers-types.js';
import type {
  IdempotencyService,
  IdempotentRequest,
  StoredOutcome,
} from '../idempotency/idempotency-service.js';
import type { LedgerService } from '../ledger/ledger-service.js';
import { formatAmount, parseAmount, parseNonNegativeAmount } from '../money/money.js';
import * as repo from './subscribers-repo.js';
import {
  subscriberFloor,
  type SettableSubscriberStatus,
  type SubscriberRow,
  type SubscriberStatus,
} from './subscribers-types.js';

export interface SubscriberInput {
  funding_type: FundingType;
  status: SettableSubscriberStatus;
  credit_limit?: string;
}

export interface SubscriberView {
  msisdn: string;
  carrier: string;
  funding_type: FundingType;
  status: SubscriberStatus;
  currency: string;
  credit_limit: string;
  balance: { posted: string; held: string; available: string };
  spent: { today: string; this_month: string };
  created_at: string;
  updated_at: string;
}

export interface TopupInput {
  amount: string;
  currency: string;
  reference: string;
}

export interface SubscribersService {
  putSubscriber(
    actor: Actor,
    carrierId: string,
    msisdn: string,
    input: SubscriberInput,
  ): Promise<{ created: boolean; subscriber: SubscriberView }>;
  getSubscriber(carrierId: string, msisdn: string): Promise<SubscriberView>;
  topup(
    actor: Actor,
    carrierId: string,
    msisdn: string,
    input: TopupInput,
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
}

/**
 * The answer to a carrier writing a number another carrier holds: the same whoever the holder is,
 * so it tells nothing about them (SPEC §9.1).
 */
export function heldElsewhere(): AppError {
  return new AppError('msisdn_held_elsewhere', 'Another carrier holds this number.', {
    param: 'msisdn',
  });
}

/** The answer to a change of a record that a port made read-only history. */
export function portedOut(): AppError {
  return new AppError(
    'invalid_state',
    'This number was ported out of this carrier; its record is read-only history.',
    { extra: { current_status: 'ported_out' } },
  );
}

export function createSubscribersService(deps: {
  pool: Pool;
  ledger: LedgerService;
  idempotency: IdempotencyService;
}): SubscribersService {
  const { pool, ledger, idempotency } = deps;

  async function carrierOf(carrierId: string): Promise<CarrierRow> {
    const carrier = await carriersRepo.findCarrier(pool, carrierId);
    if (!carrier) throw new AppError('forbidden', 'This key has no carrier.');
    return carrier;
  }

  async function view(
    db: Queryable,
    carrier: CarrierRow,
    s: SubscriberRow,
  ): Promise<SubscriberView> {
    const balance = await ledger.balance(db, { id: s.account_id, hot: false });
    const spent = await repo.subscriberSpend(db, s.id, carrier.timezone);
    const fmt = (v: bigint) => formatAmount(v, carrier.currency);
    return {
      msisdn: s.msisdn,
      carrier: carrier.id,
      funding_type: s.funding_type,
      status: s.status,
      currency: carrier.currency,
      credit_limit: fmt(BigInt(s.credit_limit)),
      balance: {
        posted: fmt(balance.posted),
        held: fmt(balance.pending),
        available: fmt(balance.available),
      },
      spent: { today: fmt(spent.today), this_month: fmt(spent.month) },
      created_at: s.created_at.toISOString(),
      updated_at: s.updated_at.toISOString(),
    };
  }

  /** Creates or updates the carrier's record of a number, in the caller's transaction. */
  async function writeSubscriber(
    tx: PoolClient,
    actor: Actor,
    carrier: CarrierRow,
    msisdn: string,
    input: SubscriberInput,
    creditLimit: bigint | undefined,
  ): Promise<{ created: boolean; subscriber: SubscriberView }> {
    const carrierId = carrier.id;
    let current = await repo.findSubscriber(tx, carrierId, msisdn, { forUpdate: true });
    if (current?.status === 'ported_out') throw portedOut();
    if (!current) {
      // Read by a later statement than the one above: this carrier's own record may have been
      // committed in between (a concurrent PUT of the same number by the same carrier).
      const holder = await repo.findHolder(tx, msisdn, { forUpdate: true });
      if (holder && holder.carrier_id !== carrierId) throw heldElsewhere();
      current = holder;
    }
    const limit = creditLimit ?? (current ? BigInt(current.credit_limit) : 0n);
    const floor = subscriberFloor(input.funding_type, limit);
    let row: SubscriberRow;
    if (!current) {
      const id = newId('sub');
      const account = await ledger.openSubscriberAccount(tx, id, carrier.currency, floor);
      row = await repo.insertSubscriber(tx, {
        id,
        carrier_id: carrierId,
        msisdn,
        funding_type: input.funding_type,
        status: input.status,
        credit_limit: limit.toString(),
        account_id: account.id,
      });
    } else {
      row = await repo.updateSubscriber(tx, current.id, {
        funding_type: input.funding_type,
        status: input.status,
        credit_limit: limit.toString(),
      });
      await ledger.setFloor(tx, { id: row.account_id, hot: false }, floor);
    }
    await insertAuditEvent(tx, actor, {
      action: current ? 'subscriber.updated' : 'subscriber.created',
      objectType: 'subscriber',
      objectId: row.id,
      summary: {
        msisdn: maskMsisdn(msisdn),
        funding_type: row.funding_type,
        status: row.status,
        credit_limit: row.credit_limit,
        ...(current
          ? {
              previous: {
                funding_type: current.funding_type,
                status: current.status,
                credit_limit: current.credit_limit,
              },
            }
          : {}),
      },
    });
    return { created: !current, subscriber: await view(tx, carrier, row) };
  }

  return {
    async putSubscriber(actor, carrierId, msisdn, input) {
      const carrier = await carrierOf(carrierId);
      const creditLimit =
        input.credit_limit === undefined
          ? undefined
          : parseNonNegativeAmount(input.credit_limit, carrier.currency, 'credit_limit');
      // Two carriers creating one new number at once: the holder index lets one insert commit and
      // refuses the other, whose second pass then finds the holder (or, when both requests came
      // from one carrier, its own new record to update).
      for (let pass = 0; ; pass++) {
        try {
          return await withTransaction(pool, (tx) =>
            writeSubscriber(tx, actor, carrier, msisdn, input, creditLimit),
          );
        } catch (err) {
          if (!repo.isSecondHolder(err)) throw err;
          if (pass > 0) throw heldElsewhere();
        }
      }
    },

    async getSubscriber(carrierId, msisdn) {
      const carrier = await carrierOf(carrierId);
      const row = await repo.findSubscriber(pool, carrierId, msisdn);
      if (!row)
        throw new AppError(
          'subscriber_not_found',
          `No subscriber ${maskMsisdn(msisdn)} at this carrier.`,
        );
      return view(pool, carrier, row);
    },

    async topup(actor, carrierId, msisdn, input, idem) {
      const carrier = await carrierOf(carrierId);
      if (input.currency !== carrier.currency) {
        throw new AppError(
          'currency_mismatch',
          `This carrier's accounts are in ${carrier.currency}.`,
          { param: 'currency' },
        );
      }
      const amount = parseAmount(input.amount, carrier.currency);
      const funding = await ledger.partyAccount('carrier_funding', carrierId, carrier.currency);
      return idempotency.run(idem, async (tx) => {
        const sub = await repo.findSubscriber(tx, carrierId, msisdn);
        if (!sub)
          throw new AppError(
            'subscriber_not_found',
            `No subscriber ${maskMsisdn(msisdn)} at this carrier.`,
          );
        // Under the account lock a port completion holds: a top-up racing one either lands before
        // the balance is handed back or finds the record ported out, never credits a dead record.
        if (sub.status === 'ported_out' || !(await repo.lockHeldSubscriber(tx, sub))) {
          throw portedOut();
        }
        if (sub.funding_type !== 'prepaid') {
          throw new AppError(
            'invalid_state',
            'Top-ups credit prepaid accounts; this subscriber is postpaid.',
            {
              extra: { funding_type: sub.funding_type },
            },
          );
        }
        const id = newId('top');
        await ledger.post(tx, {
          kind: 'topup',
          referenceId: id,
          currency: carrier.currency,
          legs: [
            { account: { id: sub.account_id, hot: false }, amount },
            { account: funding, amount: -amount },
          ],
        });
        await insertAuditEvent(tx, actor, {
          action: 'subscriber.topped_up',
          objectType: 'subscriber',
          objectId: sub.id,
          summary: {
            msisdn: maskMsisdn(msisdn),
            amount: amount.toString(),
            currency: carrier.currency,
            reference: input.reference,
            topup_id: id,
          },
        });
        const balance = await ledger.balance(tx, { id: sub.account_id, hot: false });
        return {
          status: 201,
          body: {
            id,
            msisdn,
            amount: formatAmount(amount, carrier.currency),
            currency: carrier.currency,
            reference: input.reference,
            balance: {
              posted: formatAmount(balance.posted, carrier.currency),
              held: formatAmount(balance.pending, carrier.currency),
              available: formatAmount(balance.available, carrier.currency),
            },
            created_at: new Date().toISOString(),
          },
        };
      });
    },
  };
}
