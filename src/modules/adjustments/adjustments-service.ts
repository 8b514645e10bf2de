import { toPage, type Page } from '../../http/pagination.js';
import type { Pool, Queryable } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import type {
  IdempotencyService,
  IdempotentRequest,
  StoredOutcome,
} from '../idempotency/idempotency-service.js';
import { GATEWAY_OWNER, type LedgerService } from '../ledger/ledger-service.js';
import type { AccountRef } from '../ledger/ledger-types.js';
import { currencyExponent, formatAmount, parseAmount } from '../money/money.js';
import * as repo from './adjustments-repo.js';
import {
  toAdjustmentView,
  type AccountName,
  type AdjustmentRow,
  type AdjustmentStatus,
  type AdjustmentView,
  type CreateAdjustmentInput,
} from './adjustments-types.js';

export interface AdjustmentsService {
  /** Records a correction awaiting another admin's approval; moves no money yet. */
  createAdjustment(
    actor: Actor,
    input: CreateAdjustmentInput,
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  /** Posts a pending correction, by another person than its creator (four-eyes, SPEC §9.2). */
  approveAdjustment(actor: Actor, id: string, idem: IdempotentRequest): Promise<StoredOutcome>;
  /** Closes a pending correction without posting anything (its creator may withdraw it too). */
  rejectAdjustment(
    actor: Actor,
    id: string,
    input: { reason?: string },
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  getAdjustment(id: string): Promise<AdjustmentView>;
  listAdjustments(filter: {
    status?: AdjustmentStatus;
    limit: number;
    startingAfter?: string;
  }): Promise<Page<AdjustmentView>>;
}

interface ResolvedAccount {
  ref: AccountRef;
  ownerId: string;
  msisdn: string | null;
}

function invalid(param: string, message: string): AppError {
  return new AppError('validation_failed', message, { param });
}

/** The key and the person deciding: four-eyes needs a person, so a machine key is refused. */
function personOf(actor: Actor): { keyId: string; operatorId: string } {
  if (actor.apiKeyId === null) throw new AppError('forbidden', 'Adjustments need an admin key.');
  if (!actor.operatorId) {
    throw new AppError(
      'operator_required',
      "Adjustments are created and decided by people: use an operator's personal admin key, not a machine key.",
    );
  }
  return { keyId: actor.apiKeyId, operatorId: actor.operatorId };
}

function notPending(row: AdjustmentRow, verb: string): AppError {
  return new AppError(
    'invalid_state',
    `Cannot ${verb} an adjustment that is ${row.status}; only pending_approval ones can be.`,
    { extra: { adjustment_id: row.id, current_status: row.status } },
  );
}

/** 409 for a debit that would break a floor; `debitable` is what would fit now. */
function floorExceeded(
  currency: string,
  available: bigint,
  floor: bigint,
  adjustmentId?: string,
): AppError {
  const debitable = formatAmount(available > floor ? available - floor : 0n, currency);
  return new AppError(
    'account_floor_exceeded',
    `The debit would take the account below its floor: ${debitable} ${currency} can be debited now.`,
    {
      ...(adjustmentId === undefined ? { param: 'amount' } : {}),
      extra: { ...(adjustmentId === undefined ? {} : { adjustment_id: adjustmentId }), debitable },
    },
  );
}

function auditSummary(row: AdjustmentRow): Record<string, unknown> {
  return {
    status: row.status,
    account: {
      type: row.account_kind,
      owner_id: row.owner_id,
      ...(row.msisdn ? { msisdn: maskMsisdn(row.msisdn) } : {}),
    },
    amount: row.amount,
    currency: row.currency,
    direction: row.direction,
    reason: row.reason,
    created_by: row.created_by_key_id,
    created_by_operator: row.created_by_operator,
  };
}

export function createAdjustmentsService(deps: {
  pool: Pool;
  ledger: LedgerService;
  idempotency: IdempotencyService;
}): AdjustmentsService {
  const { pool, ledger, idempotency } = deps;

  /** Finds (or, for a party account, opens) the ledger account an admin names. */
  async function resolveAccount(
    db: Queryable,
    name: AccountName,
    currency: string,
  ): Promise<ResolvedAccount> {
    if (name.type !== 'subscriber' && name.msisdn !== undefined) {
      throw invalid('account.msisdn', `A ${name.type} account is not named by an MSISDN.`);
    }
    if (name.type === 'gateway_fees') {
      if (name.owner_id !== undefined) {
        throw invalid('account.owner_id', 'The gateway_fees account has no owner_id.');
      }
      return {
        ref: await ledger.partyAccount('gateway_fees', GATEWAY_OWNER, currency),
        ownerId: GATEWAY_OWNER,
        msisdn: null,
      };
    }
    const ownerId = name.owner_id;
    if (ownerId === undefined) {
      throw invalid(
        'account.owner_id',
        name.type === 'merchant_payable'
          ? 'Name the merchant: owner_id is its id.'
          : "Name the carrier: owner_id is the carrier's id.",
      );
    }
    if (name.type === 'merchant_payable') {
      if (!(await repo.merchantExists(db, ownerId))) {
        throw invalid('account.owner_id', `No merchant with id ${ownerId}.`);
      }
      return {
        ref: await ledger.partyAccount('merchant_payable', ownerId, currency),
        ownerId,
        msisdn: null,
      };
    }
    const carrierCurrency = await repo.findCarrierCurrency(db, ownerId);
    if (carrierCurrency === undefined) {
      throw invalid('account.owner_id', `No carrier with id ${ownerId}.`);
    }
    if (carrierCurrency !== currency) {
      throw new AppError(
        'currency_mismatch',
        `This carrier's accounts are in ${carrierCurrency}.`,
        {
          param: 'currency',
        },
      );
    }
    if (name.type === 'subscriber') {
      if (name.msisdn === undefined) {
        throw invalid('account.msisdn', "Name the subscriber: msisdn with its carrier's owner_id.");
      }
      const sub = await repo.findSubscriberAccount(db, ownerId, name.msisdn);
      if (!sub) {
        throw new AppError(
          'subscriber_not_found',
          `No subscriber ${maskMsisdn(name.msisdn)} at carrier ${ownerId}.`,
          { param: 'account.msisdn' },
        );
      }
      return { ref: { id: sub.account_id, hot: false }, ownerId, msisdn: name.msisdn };
    }
    return {
      ref: await ledger.partyAccount(name.type, ownerId, currency),
      ownerId,
      msisdn: null,
    };
  }

  /** The debit's early check; approval enforces the floor again, atomically, when it posts. */
  async function assertDebitable(
    db: Queryable,
    account: AccountRef,
    amount: bigint,
    currency: string,
  ): Promise<void> {
    if (account.hot) return;
    const room = await repo.accountHeadroom(db, account.id);
    if (room.floor === null) return;
    const available = BigInt(room.available);
    const floor = BigInt(room.floor);
    if (available - amount < floor) throw floorExceeded(currency, available, floor);
  }

  async function decide(
    id: string,
    idem: IdempotentRequest,
    work: (tx: Queryable, row: AdjustmentRow) => Promise<AdjustmentRow>,
  ): Promise<StoredOutcome> {
    return idempotency.run(idem, async (tx) => {
      // The row lock orders concurrent decisions: the second one finds the first one's outcome.
      const row = await repo.findAdjustment(tx, id, { forUpdate: true });
      if (!row) throw new AppError('not_found', `No adjustment ${id}.`);
      return { status: 200, body: toAdjustmentView(await work(tx, row)) };
    });
  }

  return {
    async createAdjustment(actor, input, idem) {
      const { keyId, operatorId } = personOf(actor);
      currencyExponent(input.currency);
      const amount = parseAmount(input.amount, input.currency);
      const account = await resolveAccount(pool, input.account, input.currency);
      return idempotency.run(idem, async (tx) => {
        if (input.direction === 'debit') {
          await assertDebitable(tx, account.ref, amount, input.currency);
        }
        const row = await repo.insertAdjustment(tx, {
          id: newId('adj'),
          accountId: account.ref.id,
          kind: input.account.type,
          ownerId: account.ownerId,
          msisdn: account.msisdn,
          currency: input.currency,
          amount,
          direction: input.direction,
          reason: input.reason,
          createdByKeyId: keyId,
          createdByOperator: operatorId,
        });
        await insertAuditEvent(tx, actor, {
          action: 'adjustment.created',
          objectType: 'adjustment',
          objectId: row.id,
          summary: auditSummary(row),
        });
        return { status: 201, body: toAdjustmentView(row) };
      });
    },

    async approveAdjustment(actor, id, idem) {
      const { keyId, operatorId } = personOf(actor);
      return decide(id, idem, async (tx, row) => {
        if (row.status !== 'pending_approval') throw notPending(row, 'approve');
        // Two keys of one person are one person: the comparison is of operators, not keys.
        if (row.created_by_operator === null || row.created_by_operator === operatorId) {
          throw new AppError(
            'forbidden',
            row.created_by_operator === null
              ? 'Four-eyes: this adjustment names no person as its creator (it predates operators); reject it and create it again.'
              : 'Four-eyes: an adjustment is approved by another person than the one who created it, whichever of their keys they use.',
            {
              extra: {
                adjustment_id: row.id,
                created_by: row.created_by_key_id,
                created_by_operator: row.created_by_operator,
              },
            },
          );
        }
        // Opened in this transaction, so a refused approval leaves no trace of it.
        const suspense = await ledger.openSuspenseAccount(tx, row.currency);
        const amount = BigInt(row.amount);
        const signed = row.direction === 'credit' ? amount : -amount;
        const target = { id: row.account_id, hot: await repo.accountIsHot(tx, row.account_id) };
        const moved = await ledger.post(tx, {
          kind: 'adjustment',
          referenceId: row.id,
          currency: row.currency,
          legs: [
            { account: target, amount: signed },
            { account: suspense, amount: -signed },
          ],
        });
        if (!moved) {
          const room = await repo.accountHeadroom(tx, row.account_id);
          const floor = BigInt(room.floor ?? 0);
          throw floorExceeded(row.currency, BigInt(room.available), floor, row.id);
        }
        const posted = await repo.decideAdjustment(tx, row.id, {
          status: 'posted',
          keyId,
          operatorId,
        });
        await insertAuditEvent(tx, actor, {
          action: 'adjustment.approved',
          objectType: 'adjustment',
          objectId: row.id,
          summary: auditSummary(posted),
        });
        return posted;
      });
    },

    async rejectAdjustment(actor, id, input, idem) {
      const { keyId, operatorId } = personOf(actor);
      return decide(id, idem, async (tx, row) => {
        if (row.status !== 'pending_approval') throw notPending(row, 'reject');
        const rejected = await repo.decideAdjustment(tx, row.id, {
          status: 'rejected',
          keyId,
          operatorId,
          reason: input.reason,
        });
        await insertAuditEvent(tx, actor, {
          action: 'adjustment.rejected',
          objectType: 'adjustment',
          objectId: row.id,
          summary: { ...auditSummary(rejected), rejection_reason: input.reason ?? null },
        });
        return rejected;
      });
    },

    async getAdjustment(id) {
      const row = await repo.findAdjustment(pool, id);
      if (!row) throw new AppError('not_found', `No adjustment ${id}.`);
      return toAdjustmentView(row);
    },

    async listAdjustments(filter) {
      if (filter.startingAfter !== undefined) {
        if (!(await repo.findAdjustment(pool, filter.startingAfter))) {
          throw new AppError('invalid_cursor', `No adjustment ${filter.startingAfter}.`, {
            param: 'starting_after',
          });
        }
      }
      const rows = await repo.listAdjustments(pool, filter);
      return toPage(rows, filter.limit, toAdjustmentView);
    },
  };
}
