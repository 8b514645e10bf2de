import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { toPage, type Page } from '../../http/pagination.js';
import { maskMsisdn } from '../../lib/msisdn.js';
import {
  isPublicUnicast,
  type AddressPolicy,
  type ResolveHost,
} from '../../lib/outbound-address.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { defaultLeaseMs, runOutboxPass } from '../../workers/outbox.js';
import type { Worker } from '../../workers/workers.js';
import { createWebhookPoster, type DeliveryResult } from '../events/webhook-delivery.js';
import * as repo from './sms-repo.js';
import { toSandboxSmsView, type SandboxSmsView } from './sms-types.js';

export interface SmsService {
  /**
   * Messages the sandbox sink received for a number that the caller may read, newest first
   * (served in sandbox mode only; SPEC §10).
   */
  sandboxInbox(filter: {
    msisdn: string;
    reader: repo.SmsReader;
    limit: number;
    startingAfter?: string;
  }): Promise<Page<SandboxSmsView>>;
}

export function createSmsService(deps: { pool: Pool }): SmsService {
  return {
    async sandboxInbox(filter) {
      const rows = await repo.listDeliveredSms(deps.pool, filter);
      return toPage(rows, filter.limit, toSandboxSmsView);
    },
  };
}

/** Codes are valid 5 minutes, so retries are quick and few; past the expiry a message is dropped. */
export const DEFAULT_SMS_RETRY_SCHEDULE_MS = [2, 5, 15, 30, 60, 120].map((s) => s * 1000);

export interface SmsDispatcherOptions {
  pool: Pool;
  logger: Logger;
  metrics: Pick<Metrics, 'smsDeliveries'>;
  /** Sandbox mode: messages go to the sandbox sink (GET /v1/sandbox/sms), never to a carrier. */
  sandbox: boolean;
  /** Which carrier addresses may be connected to (default: public unicast only). */
  allowAddress?: AddressPolicy;
  /** Resolves carrier names at connect time (default: the system resolver). */
  resolveHost?: ResolveHost;
  timeoutMs: number;
  /** Base delay before each retry; each is jittered to between half and all of itself. */
  retryScheduleMs?: readonly number[];
  /** How long a claimed message stays with its worker (default: the timeout plus 30 s). */
  leaseMs?: number;
  batchSize?: number;
  /** Restricts the worker to these carriers' messages (tests sharing one database). */
  carrierIds?: readonly string[];
  random?: () => number;
}

export interface SmsDispatcher extends Worker {
  /** Closes idle connections to carriers. */
  close(): void;
}

const USER_AGENT = 'dcb-gateway-sms/1';

/** A 4xx other than 408/429 means the carrier will never take this request: retrying is pointless. */
function isPermanent(result: DeliveryResult): boolean {
  const s = result.status;
  return s !== null && s >= 400 && s < 500 && s !== 408 && s !== 429;
}

/**
 * Delivers the SMS outbox. Each pass claims due messages in a short transaction (FOR UPDATE SKIP
 * LOCKED, then a lease), POSTs them to the carrier's `sms_url` with no transaction open, and
 * records each outcome in a transaction of its own; a crash mid-send means one more attempt after
 * the lease, so the carrier gets the message id as `Idempotency-Key` to drop duplicates.
 *
 * The message text (it carries a one-time code) is never logged; logs name the message id and a
 * masked number only. Like webhooks, carrier URLs may lead only to public unicast addresses,
 * checked on the address connected to; a private interconnect must be named by the operator
 * (`SMS_PRIVATE_NETWORKS`), never by an API caller.
 */
export function createSmsDispatcher(options: SmsDispatcherOptions): SmsDispatcher {
  const { pool, logger, metrics } = options;
  const schedule = options.retryScheduleMs ?? DEFAULT_SMS_RETRY_SCHEDULE_MS;
  const leaseMs = options.leaseMs ?? defaultLeaseMs(options.timeoutMs);
  const batchSize = options.batchSize ?? 50;
  const random = options.random ?? Math.random;
  const poster = createWebhookPoster({
    timeoutMs: options.timeoutMs,
    allowAddress: options.allowAddress ?? isPublicUnicast,
    resolveHost: options.resolveHost,
  });

  async function claim(leaseId: string): Promise<{ send: repo.DueSms[]; handled: number }> {
    return withTransaction(pool, async (tx) => {
      const due = await repo.lockDueSms(tx, { limit: batchSize, carrierIds: options.carrierIds });
      const stale = due.filter((s) => s.stale || s.message === null);
      const live = due.filter((s) => !stale.includes(s));
      await repo.closeSms(
        tx,
        stale.map((s) => s.id),
        'expired',
        null,
      );
      if (stale.length > 0) metrics.smsDeliveries.inc({ outcome: 'expired' }, stale.length);
      if (options.sandbox) {
        await repo.deliverToSandbox(
          tx,
          live.map((s) => s.id),
        );
        if (live.length > 0) metrics.smsDeliveries.inc({ outcome: 'sandbox' }, live.length);
        return { send: [], handled: due.length };
      }
      const noUrl = live.filter((s) => s.sms_url === null);
      await repo.closeSms(
        tx,
        noUrl.map((s) => s.id),
        'failed',
        'the carrier has no sms_url',
      );
      for (const s of noUrl) {
        logger.warn(
          { sms_id: s.id, carrier_id: s.carrier_id, to: maskMsisdn(s.msisdn) },
          'SMS dropped: the carrier has no sms_url',
        );
      }
      if (noUrl.length > 0) metrics.smsDeliveries.inc({ outcome: 'failed' }, noUrl.length);
      const send = live.filter((s) => s.sms_url !== null);
      await repo.leaseSms(
        tx,
        send.map((s) => s.id),
        leaseId,
        leaseMs,
      );
      return { send, handled: due.length };
    });
  }

  function outcomeOf(sms: repo.DueSms, result: DeliveryResult): repo.SmsAttemptOutcome {
    if (result.status !== null && result.status >= 200 && result.status < 300)
      return { status: 'delivered' };
    if (isPermanent(result)) return { status: 'failed' };
    const base = schedule[sms.attempts];
    if (base === undefined) return { status: 'failed' };
    return { status: 'pending', retryInMs: Math.floor(base * (0.5 + random() / 2)) };
  }

  async function deliver(sms: repo.DueSms, leaseId: string): Promise<void> {
    const body = JSON.stringify({ id: sms.id, to: sms.msisdn, text: sms.message });
    const result = await poster.post(sms.sms_url!, body, {
      'Content-Type': 'application/json',
      'User-Agent': USER_AGENT,
      'Idempotency-Key': sms.id,
    });
    const outcome = outcomeOf(sms, result);
    const held = await withTransaction(pool, (tx) =>
      repo.recordSmsAttempt(
        tx,
        sms.id,
        leaseId,
        { httpStatus: result.status, error: result.error },
        outcome,
      ),
    );
    const log = { sms_id: sms.id, to: maskMsisdn(sms.msisdn), status: result.status };
    if (!held) logger.warn(log, 'SMS lease expired during delivery');
    else if (outcome.status !== 'delivered')
      logger.warn({ ...log, error: result.error, outcome: outcome.status }, 'SMS delivery failed');
    metrics.smsDeliveries.inc({ outcome: outcome.status === 'pending' ? 'retry' : outcome.status });
  }

  return {
    name: 'sms-dispatcher',
    runOnce() {
      return runOutboxPass({
        claim: (lease) => claim(lease.id),
        deliver: (sms, lease) => deliver(sms, lease.id),
        onDeliverError: (sms, err) => logger.error({ err, sms_id: sms.id }, 'SMS record failed'),
      });
    },
    close() {
      poster.close();
    },
  };
}
