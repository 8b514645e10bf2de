import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { assertOutboundUrl, type OutboundTarget } from '../../lib/outbound-url.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import { newWebhookSecret } from '../merchants/merchants-service.js';
import * as repo from './webhook-endpoint-repo.js';

/** How long the previous secret keeps signing after a rotation (SPEC §5.1). */
export const SECRET_ROTATION_GRACE_MS = 24 * 3600 * 1000;

export interface WebhookEndpointView {
  url: string;
  status: 'enabled' | 'disabled';
}

/** The only answers that carry the secret in full. */
export type WebhookEndpointWithSecret = WebhookEndpointView & { secret: string };

export interface WebhookEndpointService {
  setEndpoint(actor: Actor, merchantId: string, url: string): Promise<WebhookEndpointWithSecret>;
  getEndpoint(merchantId: string): Promise<WebhookEndpointView>;
  rotateSecret(actor: Actor, merchantId: string): Promise<WebhookEndpointWithSecret>;
}

function noEndpoint(): AppError {
  return new AppError(
    'not_found',
    'No webhook endpoint is set; PUT /v1/webhook-endpoint with {"url": …} sets one.',
  );
}

/** Audit summaries name the host only: a URL's path or query may carry a merchant's token. */
function hostOf(url: string): string {
  return new URL(url).host;
}

export function createWebhookEndpointService(deps: {
  pool: Pool;
  /** Where a webhook URL may lead. */
  webhookTarget: OutboundTarget;
}): WebhookEndpointService {
  const { pool, webhookTarget } = deps;

  return {
    async setEndpoint(actor, merchantId, rawUrl) {
      const url = await assertOutboundUrl(rawUrl, webhookTarget, 'url');
      return withTransaction(pool, async (tx) => {
        const current = await repo.findEndpointForUpdate(tx, merchantId);
        if (!current) throw new AppError('not_found', `No merchant ${merchantId}.`);
        // The secret survives a URL change: receivers keep verifying with what they have.
        const secret = current.webhook_secret ?? newWebhookSecret();
        const row = await repo.enableEndpoint(tx, merchantId, url, secret);
        await insertAuditEvent(tx, actor, {
          action: 'webhook_endpoint.set',
          objectType: 'merchant',
          objectId: merchantId,
          summary: {
            host: hostOf(url),
            url_changed: current.webhook_url !== url,
            reenabled: current.webhook_url !== null && current.webhook_status === 'disabled',
            secret_created: current.webhook_secret === null,
          },
        });
        return { url, secret, status: row.webhook_status };
      });
    },

    async getEndpoint(merchantId) {
      const row = await repo.findEndpoint(pool, merchantId);
      if (!row?.webhook_url) throw noEndpoint();
      return { url: row.webhook_url, status: row.webhook_status };
    },

    rotateSecret: (actor, merchantId) =>
      withTransaction(pool, async (tx) => {
        const current = await repo.findEndpointForUpdate(tx, merchantId);
        if (!current?.webhook_url || !current.webhook_secret) throw noEndpoint();
        const row = await repo.rotateSecret(
          tx,
          merchantId,
          newWebhookSecret(),
          SECRET_ROTATION_GRACE_MS,
        );
        await insertAuditEvent(tx, actor, {
          action: 'webhook_endpoint.secret_rotated',
          objectType: 'merchant',
          objectId: merchantId,
          summary: {
            previous_secret_valid_until: row.webhook_previous_secret_until?.toISOString(),
          },
        });
        return {
          url: current.webhook_url,
          secret: row.webhook_secret!,
          status: row.webhook_status,
        };
      }),
  };
}
