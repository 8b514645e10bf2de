import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { toPage, type Page } from '../../http/pagination.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import {
  listCarrierEvents,
  toCarrierEventView,
  type CarrierEventType,
  type CarrierEventView,
} from './carrier-events-repo.js';
import * as repo from './events-repo.js';
import { toEventView, type EventType, type EventView } from './events-types.js';
import { findEndpoint } from './webhook-endpoint-repo.js';

export interface EventsService {
  listEvents(
    merchantId: string,
    filter: { type?: EventType; limit: number; startingAfter?: string },
  ): Promise<Page<EventView>>;
  /** One event with its delivery attempts; another merchant's event is not found. */
  getEvent(merchantId: string, id: string): Promise<EventView>;
  /** Makes the event due now, with a fresh retry schedule. */
  redeliverEvent(actor: Actor, merchantId: string, id: string): Promise<EventView>;
  /** A carrier's own events (about its subscribers), newest first. */
  listCarrierEvents(
    carrierId: string,
    filter: { type?: CarrierEventType; limit: number; startingAfter?: string },
  ): Promise<Page<CarrierEventView>>;
}

export function createEventsService(deps: { pool: Pool }): EventsService {
  const { pool } = deps;
  const notFound = (id: string) => new AppError('not_found', `No event ${id}.`);

  return {
    async listEvents(merchantId, filter) {
      const rows = await repo.listMerchantEvents(pool, { merchantId, ...filter });
      return toPage(rows, filter.limit, (row) => toEventView(row));
    },

    async listCarrierEvents(carrierId, filter) {
      const rows = await listCarrierEvents(pool, { carrierId, ...filter });
      return toPage(rows, filter.limit, toCarrierEventView);
    },

    async getEvent(merchantId, id) {
      const row = await repo.findMerchantEvent(pool, merchantId, id);
      if (!row) throw notFound(id);
      return toEventView(row, await repo.listAttempts(pool, id));
    },

    redeliverEvent: (actor, merchantId, id) =>
      withTransaction(pool, async (tx) => {
        const current = await repo.findMerchantEvent(tx, merchantId, id, { forUpdate: true });
        if (!current) throw notFound(id);
        if (current.delivery_status === 'delivering') {
          throw new AppError(
            'invalid_state',
            `Event ${id} is being delivered right now (status delivering); ask again once the attempt has finished.`,
            { extra: { delivery_status: current.delivery_status } },
          );
        }
        const endpoint = await findEndpoint(tx, merchantId);
        if (!endpoint?.webhook_url || endpoint.webhook_status !== 'enabled') {
          throw new AppError(
            'conflict',
            'There is no enabled webhook endpoint to deliver to; set one with PUT /v1/webhook-endpoint.',
          );
        }
        const row = await repo.scheduleRedelivery(tx, id);
        await insertAuditEvent(tx, actor, {
          action: 'event.redelivery_requested',
          objectType: 'event',
          objectId: id,
          summary: { from_status: current.delivery_status, attempts: current.attempts },
        });
        return toEventView(row, await repo.listAttempts(tx, id));
      }),
  };
}
