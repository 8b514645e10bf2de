import type { Pool, Queryable } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import { newId } from '../../lib/ids.js';
import type { Worker } from '../../workers/workers.js';
import * as repo from './ledger-repo.js';
import {
  GATEWAY_OWNER,
  HOT_KINDS,
  type AccountKind,
  type AccountRef,
  type DebitJournal,
  type JournalInput,
  type Leg,
} from './ledger-types.js';

/** Deltas folded per roll-up transaction. */
const ROLL_UP_BATCH = 5000;
export interface LedgerVerification extends repo.VerifyFigures {
  ok: boolean;
  checked_at: string;
}

export interface LedgerService {
  /**
   * The account of a party (merchant payable, carrier share, gateway fees, carrier funding), created
   * on first use in its own short transaction, so a rolled-back caller never leaves a remembered id
   * without its row.
   */
  partyAccount(
    kind: Exclude<AccountKind, 'subscriber'>,
    ownerId: string,
    currency: string,
  ): Promise<AccountRef>;
  /** Opens a subscriber's account with its floor (0 for prepaid, −credit limit for postpaid). */
  openSubscriberAccount(
    db: Queryable,
    ownerId: string,
    currency: string,
    floor: bigint,
  ): Promise<AccountRef>;
  /**
   * The suspense account of a currency (counter-leg of manual adjustments), opened in the caller's
   * transaction so that a refused correction leaves no trace of it. A row-balance account.
   */
  openSuspenseAccount(db: Queryable, currency: string): Promise<AccountRef>;
  /**
   * Posts a balanced journal transaction. Legs on row-balance accounts move first and respect their
   * floor; returns false (and writes nothing) when a decrease would break a floor.
   */
  post(db: Queryable, journal: Omit<JournalInput, 'id'>): Promise<boolean>;
  /** Holds an amount against an account's available balance; false when it does not fit. */
  hold(db: Queryable, holdId: string, account: AccountRef, amount: bigint): Promise<boolean>;
  /** Posts `amount` (≤ held) of a hold as a journal transaction and releases the rest. */
  postHold(
    db: Queryable,
    holdId: string,
    journal: Omit<JournalInput, 'id'>,
    amount: bigint,
  ): Promise<void>;
  /** Releases an active hold without moving money. */
  releaseHold(db: Queryable, holdId: string): Promise<void>;
  setFloor(db: Queryable, account: AccountRef, floor: bigint | null): Promise<void>;
  balance(
    db: Queryable,
    account: AccountRef,
  ): Promise<{ posted: bigint; pending: bigint; available: bigint }>;
  /** Current balances of a party's accounts, one per currency. */
  partyBalances(db: Queryable, kind: AccountKind, ownerId: string): Promise<repo.BalanceRow[]>;
  /** Folds queued hot-account credits into balances; returns how many were folded. */
  rollUp(batch?: number): Promise<number>;
  verify(): Promise<LedgerVerification>;
}

/** Invariant of every journal transaction: at least two legs, no zero leg, sum zero. */
export function assertBalanced(legs: Leg[]): void {
  const sum = legs.reduce((s, l) => s + l.amount, 0n);
  if (legs.length < 2 || sum !== 0n || legs.some((l) => l.amount === 0n)) {
    throw new AppError('internal_error', 'Refusing to post an unbalanced journal transaction.');
  }
}

/** Checks the shape of a DebitJournal and gives it its id; throws on any other shape. */
export function prepareDebitJournal(journal: Omit<JournalInput, 'id'>): DebitJournal {
  const legs = dropZeroLegs(journal.legs);
  assertBalanced(legs);
  const rowLegs = legs.filter((l) => !l.account.hot);
  const debit = rowLegs[0];
  if (rowLegs.length !== 1 || !debit || debit.amount >= 0n) {
    throw new AppError(
      'internal_error',
      'A debit journal moves exactly one row-balance account down.',
    );
  }
  return {
    ...journal,
    id: newId('txn'),
    legs,
    debit: { accountId: debit.account.id, amount: -debit.amount },
  };
}

function dropZeroLegs(legs: Leg[]): Leg[] {
  return legs.filter((l) => l.amount !== 0n);
}

export function createLedgerService(deps: { pool: Pool }): LedgerService {
  const { pool } = deps;
  // Accounts are never deleted, so their ids can be remembered for the life of the process.
  const accountIds = new Map<string, string>();

  async function post(db: Queryable, journal: Omit<JournalInput, 'id'>): Promise<boolean> {
    const legs = dropZeroLegs(journal.legs);
    assertBalanced(legs);
    // Decreases first, so a refused floor check leaves nothing half-written.
    const rowLegs = legs
      .filter((l) => !l.account.hot)
      .sort((a, b) => (a.amount < b.amount ? -1 : 1));
    for (const leg of rowLegs) {
      if (!(await repo.applyToAccount(db, leg.account.id, leg.amount))) {
        if (leg !== rowLegs[0])
          throw new AppError('internal_error', 'Floor refused after another leg moved.');
        return false;
      }
    }
    await repo.insertJournal(db, { ...journal, id: newId('txn'), legs });
    return true;
  }

  return {
    async partyAccount(kind, ownerId, currency) {
      const cacheKey = `${kind}:${ownerId}:${currency}`;
      let id = accountIds.get(cacheKey);
      if (id === undefined) {
        id = await repo.ensureAccount(pool, {
          id: newId('acc'),
          kind,
          ownerId,
          currency,
          hot: HOT_KINDS.has(kind),
          floor: null,
        });
        accountIds.set(cacheKey, id);
      }
      return { id, hot: HOT_KINDS.has(kind) };
    },

    async openSubscriberAccount(db, ownerId, currency, floor) {
      const id = await repo.ensureAccount(db, {
        id: newId('acc'),
        kind: 'subscriber',
        ownerId,
        currency,
        hot: false,
        floor,
      });
      return { id, hot: false };
    },

    async openSuspenseAccount(db, currency) {
      const id = await repo.ensureAccount(db, {
        id: newId('acc'),
        kind: 'adjustments',
        ownerId: GATEWAY_OWNER,
        currency,
        hot: false,
        floor: null,
      });
      return { id, hot: false };
    },

    post,

    hold: (db, holdId, account, amount) => repo.insertHold(db, holdId, account.id, amount),

    async postHold(db, holdId, journal, amount) {
      const legs = dropZeroLegs(journal.legs);
      assertBalanced(legs);
      const held = await repo.settleHold(db, holdId, amount, 'posted');
      if (held === undefined)
        throw new AppError('internal_error', `Hold ${holdId} is not active or too small.`);
      // The held account's posted balance moved inside settleHold; the other legs move here.
      const others = legs.filter((l) => !l.account.hot && l.amount > 0n);
      for (const leg of others) await repo.applyToAccount(db, leg.account.id, leg.amount);
      await repo.insertJournal(db, { ...journal, id: newId('txn'), legs });
    },

    async releaseHold(db, holdId) {
      await repo.settleHold(db, holdId, 0n, 'released');
    },

    setFloor: (db, account, floor) => repo.setAccountFloor(db, account.id, floor),

    async balance(db, account) {
      const b = await repo.accountBalance(db, account.id);
      if (!b) throw new AppError('internal_error', `No ledger account ${account.id}.`);
      return { ...b, available: b.posted - b.pending };
    },

    partyBalances: (db, kind, ownerId) => repo.accountBalances(db, { kind, ownerId }),

    rollUp: (batch = ROLL_UP_BATCH) => withTransaction(pool, (tx) => repo.rollUpDeltas(tx, batch)),

    async verify() {
      const figures = await withTransaction(pool, (tx) => repo.verifyFigures(tx), {
        isolation: 'repeatable read',
      });
      const ok =
        figures.unbalanced_transactions.length === 0 &&
        figures.account_mismatches.length === 0 &&
        figures.pending_mismatches.length === 0 &&
        figures.trial_balance.every((t) => t.net === '0');
      return { ok, checked_at: new Date().toISOString(), ...figures };
    },
  };
}

export { GATEWAY_OWNER };

/**
 * Folds hot-account deltas into balances in batches; SKIP LOCKED lets several instances share it.
 * A pass updates every account with deltas once, so under load it runs once per worker interval
 * unless a batch fills: balances read the unfolded deltas too, so nothing waits for it.
 */
export function ledgerRollUpWorker(ledger: LedgerService): Worker {
  return { name: 'ledger-roll-up', batchSize: ROLL_UP_BATCH, runOnce: () => ledger.rollUp() };
}
