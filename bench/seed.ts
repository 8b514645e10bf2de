import type { BenchConfig } from './config.js';
import { runCommand } from './gateway.js';
import { api, expectStatus, inParallel } from './http.js';
import { benchMsisdn, type Fixtures } from './plan.js';
import { bulkSubscribers } from './seed-sql.js';

/** An admin key for the bench database, made the way an operator bootstraps an install. */
export async function createAdminKey(databaseUrl: string, otpHashSecret: string): Promise<string> {
  const out = await runCommand('npm', ['run', '--silent', 'admin', '--', 'create-admin-key'], {
    ...process.env,
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'warn',
    OTP_HASH_SECRET: otpHashSecret,
  });
  const key = out
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .pop();
  if (!key?.startsWith('dcb_ak_')) throw new Error(`create-admin-key printed no key:\n${out}`);
  return key;
}

export interface SeedTimings {
  tenants_s: number;
  subscribers_api: number;
  subscribers_api_s: number;
  subscribers_sql: number;
  subscribers_sql_s: number;
}

/** Subscribers made through the API in `sql` mode: they prove the path and create the funding account. */
const API_SEEDED = 200;

const secs = (ms: number) => (ms / 1000).toFixed(1);

/**
 * Onboards one carrier (with explicit, large limits and no spend caps, unless
 * BENCH_CARRIER_LIMITS=default keeps the currency's defaults) and the merchants with a key each
 * through the admin API, then funded prepaid subscribers: all through the API in `api` mode;
 * in `sql` mode the first API_SEEDED through the API and the rest in one bulk SQL transaction
 * that writes the same rows (see seed-sql.ts) — 10,000 × 2 requests take minutes on this machine.
 */
export async function seed(
  cfg: BenchConfig,
  baseUrl: string,
  databaseUrl: string,
  adminKey: string,
  log: (line: string) => void,
): Promise<{ fixtures: Fixtures; timings: SeedTimings }> {
  const t0 = Date.now();
  const currency = 'VND';
  const carrier = await expectStatus<{ id: string }>(
    201,
    api(baseUrl, 'POST', '/v1/admin/carriers', adminKey, {
      code: `bench-${cfg.runId}`,
      name: `Bench carrier ${cfg.runId}`,
      currency,
      timezone: 'Asia/Ho_Chi_Minh',
      revenue_share_bps: 3000,
      ...(cfg.carrierLimits === 'uncapped'
        ? {
            limits: {
              prepaid: { per_transaction_max: '1000000000', daily_max: null, monthly_max: null },
              postpaid: { per_transaction_max: '1000000000', daily_max: null, monthly_max: null },
            },
          }
        : {}),
    }),
    'create carrier',
  );
  const carrierKey = await expectStatus<{ id: string; key: string }>(
    201,
    api(baseUrl, 'POST', '/v1/admin/api-keys', adminKey, {
      role: 'carrier',
      owner_id: carrier.id,
    }),
    'create carrier key',
  );

  const merchants: Fixtures['merchants'] = new Array(cfg.merchants);
  await inParallel(cfg.merchants, 8, async (i) => {
    const merchant = await expectStatus<{ id: string }>(
      201,
      api(baseUrl, 'POST', '/v1/admin/merchants', adminKey, {
        name: `Bench merchant ${i}`,
        fee_bps: 250,
      }),
      `create merchant ${i}`,
    );
    const key = await expectStatus<{ key: string }>(
      201,
      api(baseUrl, 'POST', '/v1/admin/api-keys', adminKey, {
        role: 'merchant',
        owner_id: merchant.id,
      }),
      `create key of merchant ${i}`,
    );
    merchants[i] = { id: merchant.id, key: key.key };
  });
  const t1 = Date.now();
  log(`  carrier and ${cfg.merchants} merchants with keys in ${secs(t1 - t0)} s`);

  const msisdns = Array.from({ length: cfg.subscribers }, (_, i) => benchMsisdn(i));
  const viaApi = cfg.seedMode === 'api' ? cfg.subscribers : Math.min(API_SEEDED, cfg.subscribers);
  let done = 0;
  await inParallel(viaApi, 32, async (i) => {
    const msisdn = msisdns[i]!;
    await expectStatus(
      201,
      api(baseUrl, 'PUT', `/v1/carrier/subscribers/${msisdn}`, carrierKey.key, {
        funding_type: 'prepaid',
        status: 'active',
      }),
      `create subscriber ${i}`,
    );
    await expectStatus(
      201,
      api(
        baseUrl,
        'POST',
        `/v1/carrier/subscribers/${msisdn}/topups`,
        carrierKey.key,
        { amount: cfg.balance, currency, reference: `bench-seed-${i}` },
        { 'idempotency-key': `bench-${cfg.runId}-topup-${i}` },
      ),
      `top up subscriber ${i}`,
    );
    done++;
    if (done % 2500 === 0) log(`  ${done}/${viaApi} subscribers funded through the API`);
  });
  const t2 = Date.now();
  log(`  ${viaApi} subscribers created and funded through the API in ${secs(t2 - t1)} s`);
  if (viaApi < cfg.subscribers) {
    await bulkSubscribers(databaseUrl, {
      carrierId: carrier.id,
      carrierKeyId: carrierKey.id,
      currency,
      msisdns: msisdns.slice(viaApi),
      amount: cfg.balance,
    });
    log(`  ${cfg.subscribers - viaApi} more written in bulk SQL in ${secs(Date.now() - t2)} s`);
  }
  const t3 = Date.now();

  return {
    fixtures: {
      baseUrl,
      runId: cfg.runId,
      currency,
      amount: cfg.chargeAmount,
      merchants,
      msisdns,
    },
    timings: {
      tenants_s: (t1 - t0) / 1000,
      subscribers_api: viaApi,
      subscribers_api_s: (t2 - t1) / 1000,
      subscribers_sql: cfg.subscribers - viaApi,
      subscribers_sql_s: (t3 - t2) / 1000,
    },
  };
}
