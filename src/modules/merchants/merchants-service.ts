import { toPage, type Page } from '../../http/pagination.js';
import { randomBytes } from 'node:crypto';
import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { assertOutboundUrl, type OutboundTarget } from '../../lib/outbound-url.js';
import { parseAmount } from '../money/money.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as repo from './merchants-repo.js';
import { toMerchantView, type ConsentPolicy, type MerchantView } from './merchants-types.js';

export interface MerchantInput {
  name?: string;
  fee_bps?: number;
  per_transaction_max?: { amount: string; currency: string } | null;
  webhook_url?: string | null;
  consent?: ConsentPolicy;
  reservation_ttl_seconds?: number | null;
}

export type CreateMerchantInput = MerchantInput & { name: string; fee_bps: number };

export type CreatedMerchant = MerchantView & { webhook_secret?: string };

export interface MerchantsService {
  createMerchant(actor: Actor, input: CreateMerchantInput): Promise<CreatedMerchant>;
  getMerchant(id: string): Promise<MerchantView>;
  listMerchants(filter: {
    status?: string;
    limit: number;
    startingAfter?: string;
  }): Promise<Page<MerchantView>>;
  updateMerchant(actor: Actor, id: string, input: MerchantInput): Promise<MerchantView>;
  setMerchantStatus(
    actor: Actor,
    id: string,
    status: 'active' | 'suspended',
  ): Promise<MerchantView>;
}

/** A webhook signing secret: 256 random bits, shown to the merchant once. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

function perTransactionMax(input: MerchantInput['per_transaction_max']) {
  if (input === undefined) return {};
  if (input === null) return { per_transaction_max: null, per_transaction_max_currency: null };
  return {
    per_transaction_max: parseAmount(
      input.amount,
      input.currency,
      'per_transaction_max.amount',
    ).toString(),
    per_transaction_max_currency: input.currency,
  };
}

export function createMerchantsService(deps: {
  pool: Pool;
  /** Where a webhook_url may lead. */
  webhookTarget: OutboundTarget;
}): MerchantsService {
  const { pool, webhookTarget } = deps;

  return {
    async createMerchant(actor, input) {
      const limit = perTransactionMax(input.per_transaction_max);
      const webhookUrl = input.webhook_url
        ? await assertOutboundUrl(input.webhook_url, webhookTarget, 'webhook_url')
        : null;
      const secret = webhookUrl ? newWebhookSecret() : null;
      return withTransaction(pool, async (tx) => {
        const row = await repo.insertMerchant(tx, {
          id: newId('mer'),
          name: input.name,
          fee_bps: input.fee_bps,
          per_transaction_max: limit.per_transaction_max ?? null,
          per_transaction_max_currency: limit.per_transaction_max_currency ?? null,
          consent: input.consent ?? 'carrier_default',
          reservation_ttl_seconds: input.reservation_ttl_seconds ?? null,
          webhook_url: webhookUrl,
          webhook_secret: secret,
        });
        await insertAuditEvent(tx, actor, {
          action: 'merchant.created',
          objectType: 'merchant',
          objectId: row.id,
          summary: {
            name: row.name,
            fee_bps: row.fee_bps,
            consent: row.consent,
            webhook: webhookUrl !== null,
          },
        });
        return { ...toMerchantView(row), ...(secret ? { webhook_secret: secret } : {}) };
      });
    },

    async getMerchant(id) {
      const row = await repo.findMerchant(pool, id);
      if (!row) throw new AppError('not_found', `No merchant ${id}.`);
      return toMerchantView(row);
    },

    async listMerchants(filter) {
      const rows = await repo.listMerchants(pool, filter);
      return toPage(rows, filter.limit, toMerchantView);
    },

    async updateMerchant(actor, id, input) {
      // Judged before the transaction: resolving the host must not hold the merchant's row lock.
      const webhookUrl =
        typeof input.webhook_url === 'string'
          ? await assertOutboundUrl(input.webhook_url, webhookTarget, 'webhook_url')
          : input.webhook_url;
      return withTransaction(pool, async (tx) => {
        const current = await repo.findMerchantForUpdate(tx, id);
        if (!current) throw new AppError('not_found', `No merchant ${id}.`);
        const changes: repo.MerchantChanges = {
          name: input.name,
          fee_bps: input.fee_bps,
          consent: input.consent,
          reservation_ttl_seconds: input.reservation_ttl_seconds,
          ...perTransactionMax(input.per_transaction_max),
        };
        if (input.webhook_url !== undefined) {
          changes.webhook_url = webhookUrl;
          if (changes.webhook_url && !current.webhook_secret)
            changes.webhook_secret = newWebhookSecret();
        }
        const row = await repo.updateMerchant(tx, id, changes);
        await insertAuditEvent(tx, actor, {
          action: 'merchant.updated',
          objectType: 'merchant',
          objectId: id,
          summary: {
            changed: Object.keys(changes).filter(
              (k) => k !== 'webhook_secret' && changes[k as keyof typeof changes] !== undefined,
            ),
          },
        });
        return toMerchantView(row);
      });
    },

    setMerchantStatus: (actor, id, status) =>
      withTransaction(pool, async (tx) => {
        const current = await repo.findMerchantForUpdate(tx, id);
        if (!current) throw new AppError('not_found', `No merchant ${id}.`);
        if (current.status === status) return toMerchantView(current);
        const row = await repo.updateMerchant(tx, id, { status });
        await insertAuditEvent(tx, actor, {
          action: status === 'active' ? 'merchant.activated' : 'merchant.suspended',
          objectType: 'merchant',
          objectId: id,
          summary: { from: current.status, to: status },
        });
        return toMerchantView(row);
      }),
  };
}
