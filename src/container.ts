import type { Redis } from 'ioredis';
import type { Config } from './config.js';
import type { Pool } from './db/pool.js';
import type { AuthFailureBrake } from './http/auth.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { Worker } from './workers/workers.js';
import { createApiKeysService, type ApiKeysService } from './modules/api-keys/api-keys-service.js';
import {
  createAuthChangesListener,
  type AuthChangesListener,
} from './modules/api-keys/auth-changes-listener.js';
import {
  createOperatorsService,
  type OperatorsService,
} from './modules/operators/operators-service.js';
import { createAuditSealer } from './modules/audit/audit-sealer.js';
import { createAuditService, type AuditService } from './modules/audit/audit-service.js';
import {
  createCarriersService,
  type CarriersService,
} from './modules/carriers/carriers-service.js';
import {
  createMerchantsService,
  type MerchantsService,
} from './modules/merchants/merchants-service.js';
import { createChargesService, type ChargesService } from './modules/charges/charges-service.js';
import {
  createIdempotencyService,
  type IdempotencyService,
} from './modules/idempotency/idempotency-service.js';
import {
  createLedgerService,
  ledgerRollUpWorker,
  type LedgerService,
} from './modules/ledger/ledger-service.js';
import { createRefundsService, type RefundsService } from './modules/refunds/refunds-service.js';
import {
  createAdjustmentsService,
  type AdjustmentsService,
} from './modules/adjustments/adjustments-service.js';
import { createSearchService, type SearchService } from './modules/search/search-service.js';
import {
  createReconciliationsService,
  type ReconciliationsService,
} from './modules/reconciliations/reconciliations-service.js';
import {
  createSettlementsService,
  type SettlementsService,
} from './modules/settlements/settlements-service.js';
import { createEventsService, type EventsService } from './modules/events/events-service.js';
import { createWebhookDispatcher } from './modules/events/webhook-dispatcher.js';
import {
  createWebhookEndpointService,
  type WebhookEndpointService,
} from './modules/events/webhook-endpoint-service.js';
import {
  createSubscribersService,
  type SubscribersService,
} from './modules/subscribers/subscribers-service.js';
import { createPortsService, type PortsService } from './modules/ports/ports-service.js';
import { createAuthFailureBrake } from './modules/rate-limit/rate-limit-http.js';
import { resolveOtpSecret } from './modules/charges/charges-consent.js';
import {
  createSmsDispatcher,
  createSmsService,
  type SmsService,
} from './modules/sms/sms-service.js';
import {
  createSessionsService,
  type SessionsService,
} from './modules/sessions/sessions-service.js';
import { createPasswordHasher } from './modules/sessions/sessions-password.js';
import {
  createRateLimitService,
  type RateLimitService,
} from './modules/rate-limit/rate-limit-service.js';
import {
  anyAddress,
  isPublicUnicast,
  parseNetworks,
  publicOrWithin,
  systemResolveHost,
  type ResolveHost,
} from './lib/outbound-address.js';

export interface Infrastructure {
  config: Config;
  pool: Pool;
  /** Absent when no REDIS_URL is configured: limits then live in process. */
  redis: Redis | null;
  /**
   * Connections for settlement closes and reconciliation runs, whose statements may run for
   * minutes; absent: they share `pool`.
   */
  bulkPool?: Pool;
  logger: Logger;
  metrics: Metrics;
  /** Resolves hosts of outbound URLs (webhooks, carrier SMS); default: the system resolver. */
  resolveHost?: ResolveHost;
  /**
   * The database the revocation/suspension listener connects to (one dedicated connection);
   * absent: none (the CLIs), and a change made elsewhere waits for API_KEY_CACHE_MS here.
   */
  authChangesUrl?: string;
}

export interface Container extends Infrastructure {
  apiKeys: ApiKeysService;
  /** People behind keys (SPEC §9.2). */
  operators: OperatorsService;
  /** Hears revocations and suspensions from every instance; start it with the server. */
  authChanges: AuthChangesListener | null;
  audit: AuditService;
  carriers: CarriersService;
  merchants: MerchantsService;
  ledger: LedgerService;
  idempotency: IdempotencyService;
  subscribers: SubscribersService;
  charges: ChargesService;
  refunds: RefundsService;
  /** Manual ledger corrections under four-eyes. */
  adjustments: AdjustmentsService;
  /** The admin search over every tenant's charges. */
  search: SearchService;
  events: EventsService;
  webhookEndpoints: WebhookEndpointService;
  settlements: SettlementsService;
  reconciliations: ReconciliationsService;
  /** Number porting between carriers (SPEC §9.1). */
  ports: PortsService;
  /** The SMS outbox's sandbox inbox (its dispatcher is among the workers). */
  sms: SmsService;
  authBrake: AuthFailureBrake;
  /** Per-key, per-MSISDN and auth-failure limits (Redis, falling back in process). */
  rateLimits: RateLimitService;
  /** Console sign-in: password set-up, sessions, TOTP (SPEC §9.2). */
  sessions: SessionsService;
  /** Background loops this instance may run (see workers/). */
  workers: Worker[];
}

/** The composition root: every service gets exactly the dependencies it uses. No I/O here. */
export function createContainer(infra: Infrastructure): Container {
  const { pool, config } = infra;
  const rateLimits = createRateLimitService({
    redis: infra.redis,
    pool,
    config,
    logger: infra.logger,
    metrics: infra.metrics,
  });
  const ledger = createLedgerService({ pool });
  const idempotency = createIdempotencyService({
    pool,
    retentionHours: config.IDEMPOTENCY_RETENTION_HOURS,
  });
  const charges = createChargesService({
    pool,
    ledger,
    idempotency,
    metrics: infra.metrics,
    reservationTtlSeconds: config.RESERVATION_TTL_SECONDS,
    otpSecret: resolveOtpSecret(config, infra.logger),
    numberOtp: {
      maxFailures: config.OTP_MSISDN_MAX_FAILURES,
      windowSeconds: config.OTP_MSISDN_WINDOW_SECONDS,
    },
  });
  const ports = createPortsService({ pool, ledger, idempotency, metrics: infra.metrics });
  const bulkPool = infra.bulkPool ?? pool;
  // SPEC §10: outside sandbox, tenants' URLs lead to public unicast addresses only.
  const resolveHost = infra.resolveHost ?? systemResolveHost;
  const webhookTarget = {
    allows: config.SANDBOX ? anyAddress : isPublicUnicast,
    resolve: resolveHost,
  };
  const smsTarget = {
    allows: config.SANDBOX
      ? anyAddress
      : publicOrWithin(parseNetworks(config.SMS_PRIVATE_NETWORKS.join(','))),
    resolve: resolveHost,
  };
  const settlements = createSettlementsService({
    pool: bulkPool,
    ledger,
    graceSeconds: config.SETTLEMENT_GRACE_SECONDS,
    bulkStatementTimeoutMs: config.BULK_STATEMENT_TIMEOUT_MS,
  });
  const apiKeys = createApiKeysService({ pool, cacheMs: config.API_KEY_CACHE_MS });
  return {
    ...infra,
    apiKeys,
    operators: createOperatorsService({
      pool,
      publicBaseUrl: config.PUBLIC_BASE_URL ?? `http://localhost:${config.PORT}`,
      setupTtlHours: config.OPERATOR_SETUP_TTL_HOURS,
      forgetCached: (change) => apiKeys.forget(change),
    }),
    authChanges: infra.authChangesUrl
      ? createAuthChangesListener({
          connectionString: infra.authChangesUrl,
          logger: infra.logger,
          onChange: (change) => apiKeys.forget(change),
          onResync: () => apiKeys.forgetAll(),
        })
      : null,
    ledger,
    idempotency,
    subscribers: createSubscribersService({ pool, ledger, idempotency }),
    charges,
    refunds: createRefundsService({ pool, ledger, idempotency }),
    adjustments: createAdjustmentsService({ pool, ledger, idempotency }),
    search: createSearchService({ pool }),
    audit: createAuditService({ pool }),
    carriers: createCarriersService({ pool, smsTarget }),
    merchants: createMerchantsService({ pool, webhookTarget }),
    events: createEventsService({ pool }),
    webhookEndpoints: createWebhookEndpointService({ pool, webhookTarget }),
    settlements,
    reconciliations: createReconciliationsService({
      pool: bulkPool,
      maxBytes: config.RECONCILIATION_MAX_BYTES,
      bulkStatementTimeoutMs: config.BULK_STATEMENT_TIMEOUT_MS,
    }),
    ports,
    authBrake: createAuthFailureBrake(rateLimits),
    rateLimits,
    sms: createSmsService({ pool }),
    sessions: createSessionsService({
      pool,
      rateLimits,
      hasher: createPasswordHasher({ ln: config.PASSWORD_SCRYPT_LOG2_N, r: 8, p: 1 }),
      timeouts: {
        idleSeconds: config.SESSION_IDLE_TIMEOUT_SECONDS,
        absoluteSeconds: config.SESSION_ABSOLUTE_TIMEOUT_SECONDS,
        touchSeconds: config.SESSION_TOUCH_INTERVAL_SECONDS,
      },
      totpIssuer: config.TOTP_ISSUER,
    }),
    workers: [
      ledgerRollUpWorker(ledger),
      charges.expiryWorker(),
      ports.completionWorker(),
      idempotency.reaper(),
      settlements.worker(),
      createAuditSealer({ pool, batchSize: config.AUDIT_SEAL_BATCH_SIZE }),
      createSmsDispatcher({
        pool,
        logger: infra.logger,
        metrics: infra.metrics,
        sandbox: config.SANDBOX,
        timeoutMs: config.SMS_TIMEOUT_MS,
        allowAddress: smsTarget.allows,
        resolveHost,
      }),
      createWebhookDispatcher({
        pool,
        logger: infra.logger,
        metrics: infra.metrics,
        sandbox: config.SANDBOX,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        allowAddress: webhookTarget.allows,
        resolveHost,
        retryScheduleMs: config.WEBHOOK_RETRY_SCHEDULE_SECONDS.map((s) => s * 1000),
      }),
    ],
  };
}
