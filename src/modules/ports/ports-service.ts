import type { Pool, PoolClient } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import { SYSTEM_ACTOR, type Actor } from '../../http/context.js';
import { toPage, type Page, type PageRequest } from '../../http/pagination.js';
import { newId } from '../../lib/ids.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import type { Metrics } from '../../metrics.js';
import type { Worker } from '../../workers/workers.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { insertCarrierEvent } from '../events/carrier-events-repo.js';
import * as carriersRepo from '../carriers/carriers-repo.js';
import type { FundingType } from '../carriers/carriers-types.js';
import type {
  IdempotencyService,
  IdempotentRequest,
  StoredOutcome,
} from '../idempotency/idempotency-service.js';
import type { LedgerService } from '../ledger/ledger-service.js';
import { formatAmount } from '../money/money.js';
import * as subscribersRepo from '../subscribers/subscribers-repo.js';
import { completePortIn } from './ports-complete.js';
import * as repo from './ports-repo.js';
import {
  toPortView,
  type PortEventType,
  type PortRow,
  type PortStatus,
  type PortView,
  type PortViewer,
} from './ports-types.js';

export interface PortInInput {
  msisdn: string;
  funding_type: FundingType;
  effective_at?: string;
}

/** How far ahead a port may be scheduled. */
const MAX_LEAD_DAYS = 90;

export interface PortsService {
  requestPortIn(
    actor: Actor,
    carrierId: string,
    input: PortInInput,
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  listPorts(
    viewer: { carrierId: string; side: 'gaining' | 'losing' } | 'admin',
    filter: PageRequest & { status?: PortStatus; msisdn?: string },
  ): Promise<Page<PortView>>;
  /** The losing carrier's answer to a pending port. */
  answerPortOut(
    actor: Actor,
    carrierId: string,
    portId: string,
    answer: { accept: true } | { accept: false; reason: string },
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  /** An admin completes or cancels any open port. */
  closePort(
    actor: Actor,
    portId: string,
    action: 'complete' | 'cancel',
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  /** Completes accepted ports whose effective time has passed; several instances may run it. */
  completionWorker(): Worker;
}

export function createPortsService(deps: {
  pool: Pool;
  ledger: LedgerService;
  idempotency: IdempotencyService;
  metrics: Pick<Metrics, 'charges'>;
}): PortsService {
  const { pool, ledger, idempotency, metrics } = deps;
  const currencies = new Map<string, string>();

  /** Amounts on a port are in the losing carrier's currency (a carrier's currency never changes). */
  async function formatterFor(
    db: PoolClient | Pool,
    carrierId: string,
  ): Promise<(minor: bigint) => string> {
    let currency = currencies.get(carrierId);
    if (currency === undefined) {
      const carrier = await carriersRepo.findCarrier(db, carrierId);
      if (!carrier) throw new Error(`No carrier ${carrierId}.`);
      currency = carrier.currency;
      currencies.set(carrierId, currency);
    }
    const c = currency;
    return (minor) => formatAmount(minor, c);
  }

  async function viewOf(db: PoolClient | Pool, row: PortRow, viewer: PortViewer) {
    return toPortView(row, viewer, await formatterFor(db, row.losing_carrier_id));
  }

  /** Audits a step of a port and tells both carriers, in the step's transaction. */
  async function recordStep(
    tx: PoolClient,
    actor: Actor,
    row: PortRow,
    type: PortEventType,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    await insertAuditEvent(tx, actor, {
      action: type,
      objectType: 'port',
      objectId: row.id,
      summary: {
        msisdn: maskMsisdn(row.msisdn),
        status: row.status,
        gaining_carrier_id: row.gaining_carrier_id,
        losing_carrier_id: row.losing_carrier_id,
        ...extra,
      },
    });
    for (const [carrierId, viewer] of [
      [row.gaining_carrier_id, 'gaining'],
      [row.losing_carrier_id, 'losing'],
    ] as const) {
      await insertCarrierEvent(tx, {
        carrierId,
        type,
        msisdn: row.msisdn,
        subjectId: row.id,
        data: await viewOf(tx, row, viewer),
      });
    }
  }

  function notOpen(row: PortRow, action: string): AppError {
    return new AppError('invalid_state', `Cannot ${action} a port that is ${row.status}.`, {
      extra: { port_id: row.id, current_status: row.status },
    });
  }

  function effectiveAt(input: PortInInput): Date | null {
    if (input.effective_at === undefined) return null;
    const at = new Date(input.effective_at);
    if (Number.isNaN(at.getTime())) {
      throw new AppError('validation_failed', 'effective_at is not a date-time.', {
        param: 'effective_at',
      });
    }
    if (at.getTime() > Date.now() + MAX_LEAD_DAYS * 86_400_000) {
      throw new AppError(
        'validation_failed',
        `effective_at may be at most ${MAX_LEAD_DAYS} days ahead.`,
        { param: 'effective_at' },
      );
    }
    return at;
  }

  return {
    async requestPortIn(actor, carrierId, input, idem) {
      const at = effectiveAt(input);
      return idempotency.run(idem, async (tx) => {
        await repo.lockNumberForPortRequest(tx, input.msisdn);
        const holder = await subscribersRepo.findHolder(tx, input.msisdn);
        if (!holder) {
          throw new AppError(
            'invalid_state',
            'No carrier holds this number: create the subscriber with PUT /v1/carrier/subscribers/{msisdn}.',
            { param: 'msisdn' },
          );
        }
        if (holder.carrier_id === carrierId) {
          throw new AppError('invalid_state', 'This carrier already holds this number.', {
            param: 'msisdn',
          });
        }
        if (await repo.findOpenPort(tx, input.msisdn)) {
          throw new AppError('conflict', 'A port of this number is already open.', {
            param: 'msisdn',
          });
        }
        const row = await repo.insertPort(tx, {
          id: newId('port'),
          msisdn: input.msisdn,
          gaining_carrier_id: carrierId,
          losing_carrier_id: holder.carrier_id,
          losing_subscriber_id: holder.id,
          funding_type: input.funding_type,
          effective_at: at,
        });
        await recordStep(tx, actor, row, 'port.requested', {
          funding_type: row.funding_type,
          effective_at: row.effective_at.toISOString(),
        });
        return { status: 201, body: await viewOf(tx, row, 'gaining') };
      });
    },

    async listPorts(viewer, filter) {
      const rows = await repo.listPorts(pool, {
        ...filter,
        ...(viewer === 'admin'
          ? {}
          : viewer.side === 'gaining'
            ? { gainingCarrierId: viewer.carrierId }
            : { losingCarrierId: viewer.carrierId }),
      });
      const side: PortViewer = viewer === 'admin' ? 'admin' : viewer.side;
      const views = await Promise.all(rows.map((r) => viewOf(pool, r, side)));
      return toPage(views, filter.limit, (v) => v);
    },

    async answerPortOut(actor, carrierId, portId, answer, idem) {
      return idempotency.run(idem, async (tx) => {
        const port = await repo.findPort(tx, portId, { forUpdate: true });
        if (!port || port.losing_carrier_id !== carrierId) {
          throw new AppError('not_found', `No port-out ${portId}.`);
        }
        const action = answer.accept ? 'accept' : 'reject';
        if (port.status !== 'pending') throw notOpen(port, action);
        const row = answer.accept
          ? await repo.updatePort(tx, port.id, { status: 'accepted', accepted: true })
          : await repo.updatePort(tx, port.id, {
              status: 'rejected',
              rejectionReason: answer.reason,
              closed: true,
            });
        await recordStep(
          tx,
          actor,
          row,
          answer.accept ? 'port.accepted' : 'port.rejected',
          answer.accept ? {} : { reason: answer.reason },
        );
        return { status: 200, body: await viewOf(tx, row, 'losing') };
      });
    },

    async closePort(actor, portId, action, idem) {
      return idempotency.run(idem, async (tx) => {
        const port = await repo.findPort(tx, portId, { forUpdate: true });
        if (!port) throw new AppError('not_found', `No port ${portId}.`);
        if (port.status !== 'pending' && port.status !== 'accepted') throw notOpen(port, action);
        const row =
          action === 'complete'
            ? await completePortIn(tx, { ledger, metrics }, actor, port)
            : await repo.updatePort(tx, port.id, { status: 'cancelled', closed: true });
        await recordStep(
          tx,
          actor,
          row,
          action === 'complete' ? 'port.completed' : 'port.cancelled',
          { previous_status: port.status },
        );
        return { status: 200, body: await viewOf(tx, row, 'admin') };
      });
    },

    completionWorker: () => ({
      name: 'port-completion',
      async runOnce() {
        let done = 0;
        // One port per transaction: a completion holds its subscriber's locks only briefly.
        for (; done < 20; done++) {
          const completed = await withTransaction(pool, async (tx) => {
            const port = await repo.lockDuePort(tx);
            if (!port) return false;
            const actor = SYSTEM_ACTOR('port-completion');
            const row = await completePortIn(tx, { ledger, metrics }, actor, port);
            await recordStep(tx, actor, row, 'port.completed', { previous_status: port.status });
            return true;
          });
          if (!completed) break;
        }
        return done;
      },
    }),
  };
}
