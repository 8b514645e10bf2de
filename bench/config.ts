import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** The repository root (bench/ sits directly under it). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

export type ScenarioName = 'spread' | 'hot' | 'replay';
/** The measured scenarios, and the unmeasured warm-up that precedes them. */
export type LoadScenario = ScenarioName | 'warmup';
export const SCENARIOS: ScenarioName[] = ['spread', 'hot', 'replay'];

/** Everything a bench run is shaped by; each field can be set from the environment. */
export interface BenchConfig {
  /** Short random id naming this run's databases, Redis prefix and idempotency keys. */
  runId: string;
  /** A maintenance database URL on the Postgres under test (the bench creates its own next to it). */
  baseDatabaseUrl: string;
  redisUrl: string;
  /** Seconds of load per scenario, and of pgbench. */
  durationSeconds: number;
  connections: number;
  merchants: number;
  subscribers: number;
  /** Minor units (VND) each subscriber is topped up with, and charged per request. */
  balance: string;
  chargeAmount: string;
  pgbenchScale: number;
  /** Start the gateway under `node --cpu-prof` and summarise the spread window. */
  profile: boolean;
  /** Reuse an existing dist/ instead of running `npm run build`. */
  skipBuild: boolean;
  /** The gateway's pg pool size (production default unless set). */
  gatewayPoolMax?: number;
  /** `sql`: a few subscribers through the API, the rest in bulk SQL; `api`: all through the API. */
  seedMode: 'api' | 'sql';
  /**
   * `uncapped`: the carrier has no daily or monthly spend cap, so charges take the one-statement
   * path; `default`: it keeps the VND defaults (a monthly cap), so every charge takes the
   * transactional path that sums the subscriber's spend.
   */
  carrierLimits: 'uncapped' | 'default';
  /** Seconds of spread-like load before the measured scenarios (JIT, pools, caches). */
  warmupSeconds: number;
  /**
   * Extra gateway environment for experiments (BENCH_GATEWAY_ENV="WORKERS_ENABLED=false,PG_POOL_MAX=40"),
   * applied over the bench's own settings and recorded in the results.
   */
  gatewayEnvOverrides: Record<string, string>;
  /** OTP_HASH_SECRET for this run's gateway (production mode requires one). */
  otpHashSecret: string;
}

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max} (got "${raw}").`);
  }
  return value;
}

/** `A=1,B=two` → { A: '1', B: 'two' }. */
export function parseEnvList(list: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list.split(',').map((s) => s.trim())) {
    if (!item) continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new Error(`BENCH_GATEWAY_ENV: "${item}" is not NAME=value.`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function flag(name: string): boolean {
  return ['1', 'true', 'yes'].includes((process.env[name] ?? '').toLowerCase());
}

export function loadBenchConfig(): BenchConfig {
  const poolMax = process.env.BENCH_PG_POOL_MAX;
  return {
    runId: `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`,
    baseDatabaseUrl:
      process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    durationSeconds: intFromEnv('BENCH_DURATION', 20, 2, 120),
    connections: intFromEnv('BENCH_CONNECTIONS', 64, 1, 256),
    merchants: intFromEnv('BENCH_MERCHANTS', 100, 1, 1000),
    subscribers: intFromEnv('BENCH_SUBSCRIBERS', 10_000, 10, 100_000),
    // Far more than a run can spend; under 2^31 since the defect described at the end of
    // docs/performance.md, now fixed.
    balance: '2000000000',
    chargeAmount: '1000',
    pgbenchScale: intFromEnv('BENCH_PGBENCH_SCALE', 10, 1, 100),
    profile: flag('BENCH_PROFILE'),
    skipBuild: flag('BENCH_SKIP_BUILD'),
    gatewayPoolMax: poolMax ? intFromEnv('BENCH_PG_POOL_MAX', 20, 1, 500) : undefined,
    seedMode: process.env.BENCH_SEED === 'api' ? 'api' : 'sql',
    carrierLimits: process.env.BENCH_CARRIER_LIMITS === 'default' ? 'default' : 'uncapped',
    warmupSeconds: intFromEnv('BENCH_WARMUP', 5, 0, 60),
    gatewayEnvOverrides: parseEnvList(process.env.BENCH_GATEWAY_ENV ?? ''),
    otpHashSecret: randomBytes(32).toString('hex'),
  };
}
