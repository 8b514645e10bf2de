import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Express } from 'express';
import { Redis } from 'ioredis';
import supertest from 'supertest';
import { inject } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createContainer, type Container } from '../../src/container.js';
import { createPool } from '../../src/db/pool.js';
import { withTransaction } from '../../src/db/transaction.js';
import { metricsHandler } from '../../src/http/metrics-server.js';
import { SYSTEM_ACTOR } from '../../src/http/context.js';
import type { ResolveHost } from '../../src/lib/outbound-address.js';
import { createLogger } from '../../src/logger.js';
import { createMetrics } from '../../src/metrics.js';

export interface Harness {
  app: Express;
  c: Container;
  http: ReturnType<typeof supertest>;
  /** The metrics listener of the same container (main.ts serves it on METRICS_HOST:METRICS_PORT). */
  metricsHttp: ReturnType<typeof supertest>;
  logs: string[];
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Keep the production rate-limit defaults instead of the generous test ones. */
  productionRateLimits?: boolean;
  /** Redis command timeout; short in outage tests, roomy elsewhere so a loaded machine does not fall back. */
  redisCommandTimeoutMs?: number;
  /** Client-side PostgreSQL query timeout (production sets one; tests that need it opt in). */
  pgQueryTimeoutMs?: number;
  env?: Record<string, string>;
  redis?: boolean;
  /** Another database than the run's shared one (e.g. a fresh one a test may tamper with). */
  databaseUrl?: string;
  /** Adjusts the container before the app is built (e.g. a shorter limit policy). */
  configure?: (c: Container) => void;
  /** Resolves the hosts of outbound URLs (a test's own DNS); default: the system resolver. */
  resolveHost?: ResolveHost;
  /**
   * Where the revocation/suspension listener connects (e.g. through a proxy a test cuts);
   * false: no listener. Default: the harness's database.
   */
  authChangesUrl?: string | false;
}

/** The real app on the run's database and the local Redis; each call has its own pool and metrics. */
export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const config: Config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: options.databaseUrl ?? inject('databaseUrl'),
    REDIS_URL: inject('redisUrl'),
    SANDBOX: 'true',
    LOG_LEVEL: 'info',
    WORKERS_ENABLED: 'false',
    PG_POOL_MAX: '30',
    // Each harness is its own rate-limit namespace in the shared Redis; pass the same prefix to
    // make two harnesses share limits like two instances of one deployment.
    RATE_LIMIT_KEY_PREFIX: `rl-test-${randomSuffix()}`,
    // Tests fire bursts of concurrent requests with one key and one subscriber: limits are
    // generous unless a test asks for the production defaults (the rate-limit tests do).
    ...(options.productionRateLimits
      ? {}
      : {
          RATE_LIMIT_KEY_RATE: '100000',
          RATE_LIMIT_KEY_BURST: '100000',
          RATE_LIMIT_MSISDN_PER_MINUTE: '100000',
          RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: '100000',
        }),
    ...options.env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      if (logs.length > 5000) logs.splice(0, 1000);
      cb();
    },
  });
  const logger = createLogger(config.LOG_LEVEL, sink);
  const pool = createPool(
    {
      connectionString: config.DATABASE_URL!,
      max: config.PG_POOL_MAX,
      statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS,
      ...(options.pgQueryTimeoutMs ? { queryTimeoutMs: options.pgQueryTimeoutMs } : {}),
    },
    logger,
  );
  const redis =
    options.redis === false || !config.REDIS_URL
      ? null
      : new Redis(config.REDIS_URL, {
          enableOfflineQueue: false,
          commandTimeout: options.redisCommandTimeoutMs ?? 2000,
          maxRetriesPerRequest: 0,
          lazyConnect: true,
        });
  if (redis) {
    redis.on('error', () => undefined);
    await redis.connect().catch(() => undefined);
  }
  const c = createContainer({
    config,
    pool,
    redis,
    logger,
    metrics: createMetrics({ defaultMetrics: false }),
    ...(options.resolveHost ? { resolveHost: options.resolveHost } : {}),
    ...(options.authChangesUrl === false
      ? {}
      : { authChangesUrl: options.authChangesUrl ?? config.DATABASE_URL! }),
  });
  await c.authChanges?.start();
  options.configure?.(c);
  const app = buildApp(c, { validateResponses: true });
  return {
    app,
    c,
    http: supertest(app),
    metricsHttp: supertest(metricsHandler(c)),
    logs,
    async close() {
      await c.authChanges?.stop();
      await pool.end();
      redis?.disconnect();
    },
  };
}

export function randomSuffix(): string {
  return randomBytes(5).toString('hex');
}

export function bearer(key: string): { Authorization: string } {
  return { Authorization: `Bearer ${key}` };
}

/** A fresh admin key made directly through the service (the bootstrap path). */
export async function newAdminKey(
  h: Harness,
  role: 'admin' | 'auditor' = 'admin',
): Promise<string> {
  const created = await withTransaction(h.c.pool, (tx) =>
    h.c.apiKeys.createKeyIn(tx, SYSTEM_ACTOR('test'), { role }),
  );
  return created.key;
}

export interface OperatorFixture {
  id: string;
  email: string;
  /** A personal key of the operator's own. */
  key: string;
  keyId: string;
}

/**
 * A person created through the admin API by a fresh admin, holding one personal key (made
 * through the bootstrap path: an admin may not mint another admin's key over HTTP).
 */
export async function newOperator(
  h: Harness,
  role: 'merchant' | 'carrier' | 'admin' | 'auditor' = 'admin',
  ownerId?: string,
): Promise<OperatorFixture> {
  const admin = await newAdminKey(h);
  const email = `op-${randomSuffix()}@example.test`;
  const res = await h.http
    .post('/v1/admin/operators')
    .set(bearer(admin))
    .send({ email, name: `Operator ${email}`, role, ...(ownerId ? { owner_id: ownerId } : {}) });
  if (res.status !== 201) throw new Error(`operator not created: ${res.text}`);
  const created = await withTransaction(h.c.pool, (tx) =>
    h.c.apiKeys.createKeyIn(tx, SYSTEM_ACTOR('test'), {
      role,
      operator_id: res.body.id as string,
    }),
  );
  return { id: res.body.id as string, email, key: created.key, keyId: created.id };
}
