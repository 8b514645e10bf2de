import { toPage, type Page } from '../../http/pagination.js';
import type { Pool, PoolClient } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { SYSTEM_ACTOR } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import type { Worker } from '../../workers/workers.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { GATEWAY_OWNER, type LedgerService } from '../ledger/ledger-service.js';
import type { Leg } from '../ledger/ledger-types.js';
import * as repo from './settlements-repo.js';
import {
  frozenTotals,
  sumLines,
  toSettlementView,
  type LineRow,
  type SettlementView,
  type StatementRow,
  type StatementStatus,
} from './settlements-types.js';

export interface StatementListFilter {
  carrierId?: string;
  status?: StatementStatus;
  dateGte?: string;
  dateLt?: string;
  limit: number;
  startingAfter?: string;
}

export interface SettlementsService {
  /** Opens the statements of every carrier's days up to its local today; returns how many. */
  openStatements(): Promise<number>;
  /**
   * Closes an open statement: assigns its rows, freezes lines and totals, and opens the next day.
   * Idempotent: closing a closed (or settled) statement answers it as it is.
   */
  closeStatement(actor: Actor, id: string): Promise<SettlementView>;
  /** Marks a closed statement settled and posts the carrier's payment to the ledger. */
  settleStatement(actor: Actor, id: string, paymentReference: string): Promise<SettlementView>;
  /** One statement with its lines (live while open); `carrierId` scopes it to that carrier. */
  getStatement(id: string, carrierId?: string): Promise<SettlementView>;
  listStatements(filter: StatementListFilter): Promise<Page<SettlementView>>;
  /** A merchant's settled amounts per currency (minor units). */
  merchantSettled(merchantId: string): Promise<Map<string, bigint>>;
  /** Opens new days' statements and closes those whose day (plus grace) is over. */
  worker(): Worker;
}

function nextDate(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
}

export function createSettlementsService(deps: {
  pool: Pool;
  ledger: LedgerService;
  graceSeconds: number;
  bulkStatementTimeoutMs: number;
}): SettlementsService {
  const { pool, ledger } = deps;

  /** A close reads and writes a whole day of rows: it gets the bulk statement timeout. */
  async function bulk(tx: PoolClient): Promise<void> {
    await tx.query(`SET LOCAL statement_timeout = ${Math.trunc(deps.bulkStatementTimeoutMs)}`);
  }

  async function linesOf(db: PoolClient | Pool, row: StatementRow): Promise<LineRow[]> {
    if (row.status !== 'open') return repo.statementLines(db, row.id);
    return repo.previewLines(db, row, await repo.sweepFloor(db, row.id));
  }

  async function detailed(db: PoolClient | Pool, row: StatementRow): Promise<SettlementView> {
    const lines = await linesOf(db, row);
    return toSettlementView(row, { totals: frozenTotals(row) ?? sumLines(lines), lines });
  }

  async function close(
    actor: Actor,
    id: string,
  ): Promise<{ view: SettlementView; closed: boolean }> {
    return withTransaction(pool, async (tx) => {
      await bulk(tx);
      const head = await repo.findStatement(tx, id);
      if (!head) throw new AppError('not_found', `No settlement ${id}.`);
      // Closes of one carrier run one at a time, so each sees what the previous one assigned.
      await repo.lockCarrierSettlement(tx, head.carrier_id);
      const row = (await repo.findStatement(tx, id, { forUpdate: true }))!;
      if (row.status !== 'open') return { view: await detailed(tx, row), closed: false };
      const earlier = await repo.earlierOpenStatement(tx, row);
      if (earlier) {
        throw new AppError(
          'invalid_state',
          `Close the carrier's earlier open statement ${earlier} first: days close in order.`,
          { extra: { current_status: row.status, earlier_open_statement: earlier } },
        );
      }
      const floor = await repo.sweepFloor(tx, id);
      // Taken before the sweep: a row the sweep cannot see yet is stamped at or after it.
      const horizon = await repo.lateHorizon(tx);
      await repo.assignItems(tx, row, floor);
      await repo.insertLines(tx, id);
      await repo.markClosed(tx, id, horizon);
      // Whatever arrives late needs an open statement to fall into.
      await repo.insertStatements(tx, [
        { id: newId('stl'), carrierId: row.carrier_id, businessDate: nextDate(row.business_date) },
      ]);
      const closedRow = (await repo.findStatement(tx, id))!;
      const view = await detailed(tx, closedRow);
      await insertAuditEvent(tx, actor, {
        action: 'settlement.closed',
        objectType: 'settlement',
        objectId: id,
        summary: {
          carrier_id: row.carrier_id,
          business_date: row.business_date,
          currency: row.currency,
          totals: view.totals,
          merchants: view.lines?.length ?? 0,
        },
      });
      return { view, closed: true };
    });
  }

  async function openStatements(): Promise<number> {
    let opened = 0;
    for (;;) {
      const missing = await repo.missingStatementDays(pool, 500);
      if (missing.length === 0) return opened;
      opened += await repo.insertStatements(
        pool,
        missing.map((m) => ({
          id: newId('stl'),
          carrierId: m.carrier_id,
          businessDate: m.business_date,
        })),
      );
      if (missing.length < 500) return opened;
    }
  }

  return {
    openStatements,

    closeStatement: async (actor, id) => (await close(actor, id)).view,

    async settleStatement(actor, id, paymentReference) {
      const before = await repo.findStatement(pool, id);
      if (!before) throw new AppError('not_found', `No settlement ${id}.`);
      if (before.status === 'open') {
        throw new AppError('invalid_state', 'Close the statement before settling it.', {
          extra: { current_status: before.status },
        });
      }
      // Lines are frozen once closed; the accounts are opened outside the transaction.
      const lines = await repo.statementLines(pool, id);
      const [funding, fees, ...merchants] = await Promise.all([
        ledger.partyAccount('carrier_funding', before.carrier_id, before.currency),
        ledger.partyAccount('gateway_fees', GATEWAY_OWNER, before.currency),
        ...lines.map((l) =>
          ledger.partyAccount('merchant_payable', l.merchant_id, before.currency),
        ),
      ]);
      return withTransaction(pool, async (tx) => {
        const row = (await repo.findStatement(tx, id, { forUpdate: true }))!;
        if (row.status === 'settled') {
          if (row.payment_reference === paymentReference) return detailed(tx, row);
          throw new AppError(
            'invalid_state',
            `The statement is already settled with payment reference ${row.payment_reference}.`,
            { extra: { current_status: row.status } },
          );
        }
        // The carrier pays what it owes: that amount leaves the gateway's fee and merchant
        // payable accounts (pending settlement) and is credited to the carrier's funding account.
        const legs: Leg[] = [
          { account: funding, amount: BigInt(row.owed_to_gateway!) },
          { account: fees, amount: -BigInt(row.gateway_fee!) },
          ...lines.map((l, i) => ({ account: merchants[i]!, amount: -BigInt(l.merchant_net) })),
        ];
        if (legs.some((l) => l.amount !== 0n)) {
          const posted = await ledger.post(tx, {
            kind: 'settlement',
            referenceId: id,
            currency: row.currency,
            legs,
          });
          if (!posted) throw new AppError('internal_error', 'The settlement posting was refused.');
        }
        await repo.markSettled(tx, id, paymentReference);
        await insertAuditEvent(tx, actor, {
          action: 'settlement.settled',
          objectType: 'settlement',
          objectId: id,
          summary: {
            carrier_id: row.carrier_id,
            business_date: row.business_date,
            currency: row.currency,
            owed_to_gateway: row.owed_to_gateway,
            payment_reference: paymentReference,
          },
        });
        return detailed(tx, (await repo.findStatement(tx, id))!);
      });
    },

    async getStatement(id, carrierId) {
      const row = await repo.findStatement(pool, id, { carrierId });
      if (!row) throw new AppError('not_found', `No settlement ${id}.`);
      return detailed(pool, row);
    },

    async listStatements(filter) {
      let after: repo.StatementFilter['after'];
      if (filter.startingAfter) {
        const cursor = await repo.findStatement(pool, filter.startingAfter, {
          carrierId: filter.carrierId,
        });
        if (!cursor) {
          throw new AppError('invalid_cursor', `No settlement ${filter.startingAfter}.`, {
            param: 'starting_after',
          });
        }
        after = { businessDate: cursor.business_date, id: cursor.id };
      }
      const rows = await repo.listStatements(pool, { ...filter, after });
      return toPage(rows, filter.limit, (r) => toSettlementView(r));
    },

    async merchantSettled(merchantId) {
      const rows = await repo.merchantSettledTotals(pool, merchantId);
      return new Map(rows.map((r) => [r.currency, BigInt(r.settled)]));
    },

    worker: () => ({
      name: 'settlement-close',
      async runOnce() {
        let handled = await openStatements();
        const due = await repo.dueStatements(pool, deps.graceSeconds, 20);
        for (const { id } of due) {
          try {
            if ((await close(SYSTEM_ACTOR('settlement-close'), id)).closed) handled += 1;
          } catch (err) {
            // An earlier day of the same carrier failed to close; it is retried on the next pass.
            if (!(err instanceof AppError && err.code === 'invalid_state')) throw err;
          }
        }
        return handled;
      },
    }),
  };
}
