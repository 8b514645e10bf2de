import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import {
  anyAddress,
  isPublicUnicast,
  type AddressPolicy,
  type ResolveHost,
} from '../../lib/outbound-address.js';
import { SYSTEM_ACTOR } from '../../http/context.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { defaultLeaseMs, runOutboxPass } from '../../workers/outbox.js';
import type { Worker } from '../../workers/workers.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as repo from './events-repo.js';
import type { AttemptOutcome, DueEvent } from './events-repo.js';
import { toCloudEvent } from './events-types.js';
import {
  createWebhookPoster,
  type DeliveryResult,
  type WebhookPoster,
} from './webhook-delivery.js';
import { disableEndpoint } from './webhook-endpoint-repo.js';
import { signWebhook } from './webhook-signature.js';

/** SPEC §5.1: delivery is retried for at least 24 hours. */
export const RETRY_WINDOW_MS = 24 * 3600 * 1000;

export const DEFAULT_RETRY_SCHEDULE_MS = [
  10, 30, 60, 300, 900, 3600, 10_800, 21_600, 43_200, 86_400,
].map((s) => s * 1000);

export interface WebhookDispatcherOptions {
  pool: Pool;
  logger: Logger;
  metrics: Pick<Metrics, 'webhookDeliveries'>;
  /** Sandbox mode allows loopback and private receivers; otherwise only public unicast. */
  sandbox: boolean;
  /** Overrides the address policy `sandbox` implies (tests that need one receiver allowed). */
  allowAddress?: AddressPolicy;
  /** Resolves receiver names at connect time (default: the system resolver). */
  resolveHost?: ResolveHost;
  timeoutMs: number;
  /** Base delay before each retry; each is jittered to a random fraction of itself. */
  retryScheduleMs?: readonly number[];
  /** Retries go on at least this long after an event came due (default 24 h). */
  retryWindowMs?: number;
  /** How long a claimed event stays with its dispatcher (default: the timeout plus 30 s). */
  leaseMs?: number;
  /** Events claimed per pass; they are sent concurrently. */
  batchSize?: number;
  /** Restricts the dispatcher to these merchants' events (tests sharing one database). */
  merchantIds?: readonly string[];
  random?: () => number;
}

export interface WebhookDispatcher extends Worker {
  /** Closes idle connections to receivers. */
  close(): void;
}

const USER_AGENT = 'dcb-gateway-webhooks/1';

/**
 * Delivers the outbox. Each pass claims due events in a short transaction (FOR UPDATE SKIP
 * LOCKED, then a lease), POSTs them with no transaction open, and records each outcome in a
 * transaction of its own. Any number of instances can run it: a claimed event is invisible to
 * others until its lease ends, so a crash mid-send means one more attempt after the lease,
 * never a lost event.
 */
export function createWebhookDispatcher(options: WebhookDispatcherOptions): WebhookDispatcher {
  const { pool, logger, metrics } = options;
  const schedule = options.retryScheduleMs ?? DEFAULT_RETRY_SCHEDULE_MS;
  const windowMs = options.retryWindowMs ?? RETRY_WINDOW_MS;
  const leaseMs = options.leaseMs ?? defaultLeaseMs(options.timeoutMs);
  const batchSize = options.batchSize ?? 20;
  const random = options.random ?? Math.random;
  const poster: WebhookPoster = createWebhookPoster({
    timeoutMs: options.timeoutMs,
    allowAddress: options.allowAddress ?? (options.sandbox ? anyAddress : isPublicUnicast),
    resolveHost: options.resolveHost,
  });
  const actor = SYSTEM_ACTOR('webhook-dispatcher');

  async function claim(leaseId: string): Promise<{ send: DueEvent[]; handled: number }> {
    const { send, skipped } = await withTransaction(pool, async (tx) => {
      const due = await repo.lockDueEvents(tx, {
        limit: batchSize,
        merchantIds: options.merchantIds,
      });
      const send = due.filter(
        (e) =>
          e.webhook_url !== null && e.webhook_secret !== null && e.webhook_status === 'enabled',
      );
      const skip = due.filter((e) => !send.includes(e)).map((e) => e.id);
      if (skip.length > 0) await repo.markEventsSkipped(tx, skip);
      if (send.length > 0) {
        await repo.leaseEvents(
          tx,
          send.map((e) => e.id),
          leaseId,
          leaseMs,
        );
      }
      return { send, skipped: skip.length };
    });
    if (skipped > 0) metrics.webhookDeliveries.inc({ outcome: 'skipped' }, skipped);
    return { send, handled: send.length + skipped };
  }

  /** After a failure: the next delay of the schedule, then one last try at the window's end. */
  function afterFailure(
    event: DueEvent,
    result: DeliveryResult,
    claimedAt: number,
  ): AttemptOutcome {
    if (result.status === 410) return { status: 'failed' };
    const failures = event.attempts + 1 - event.retry_base;
    const base = schedule[failures - 1];
    if (base !== undefined) return { status: 'pending', retryInMs: Math.floor(random() * base) };
    const elapsed =
      event.db_now.getTime() - event.retry_started_at.getTime() + (Date.now() - claimedAt);
    const remaining = windowMs - elapsed;
    return remaining > 0 ? { status: 'pending', retryInMs: remaining } : { status: 'failed' };
  }

  async function deliver(event: DueEvent, leaseId: string, claimedAt: number): Promise<void> {
    const url = event.webhook_url!;
    const body = JSON.stringify(toCloudEvent(event));
    const secrets = [event.webhook_secret!];
    if (event.webhook_previous_secret) secrets.push(event.webhook_previous_secret);
    const result = await poster.post(url, body, {
      'Content-Type': 'application/cloudevents+json',
      'User-Agent': USER_AGENT,
      'Webhook-Signature': signWebhook(secrets, body),
    });
    const ok = result.status !== null && result.status >= 200 && result.status < 300;
    const outcome: AttemptOutcome = ok
      ? { status: 'delivered' }
      : afterFailure(event, result, claimedAt);

    const held = await withTransaction(pool, async (tx) => {
      await repo.insertAttempt(tx, {
        eventId: event.id,
        url,
        httpStatus: result.status,
        latencyMs: result.latencyMs,
        error: result.error,
      });
      const stillHeld = await repo.recordAttemptOutcome(
        tx,
        event.id,
        leaseId,
        { httpStatus: result.status, error: result.error, latencyMs: result.latencyMs },
        outcome,
      );
      if (
        stillHeld &&
        result.status === 410 &&
        (await disableEndpoint(tx, event.merchant_id, url))
      ) {
        await insertAuditEvent(tx, actor, {
          action: 'webhook_endpoint.disabled',
          objectType: 'merchant',
          objectId: event.merchant_id,
          summary: { reason: 'receiver answered 410 Gone', event_id: event.id },
        });
      }
      return stillHeld;
    });
    if (!held) {
      logger.warn({ event_id: event.id }, 'webhook lease expired during delivery');
    }
    const label = ok
      ? 'delivered'
      : result.status === 410
        ? 'endpoint_gone'
        : outcome.status === 'pending'
          ? 'retry'
          : 'failed';
    metrics.webhookDeliveries.inc({ outcome: label });
  }

  return {
    name: 'webhook-dispatcher',
    runOnce() {
      return runOutboxPass({
        claim: (lease) => claim(lease.id),
        deliver: (event, lease) => deliver(event, lease.id, lease.claimedAt),
        onDeliverError: (event, err) =>
          logger.error({ err, event_id: event.id }, 'webhook record failed'),
      });
    },
    close() {
      poster.close();
    },
  };
}
