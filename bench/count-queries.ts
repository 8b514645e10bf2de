/**
 * What one one-step charge costs in database and Redis round trips: runs the real app in
 * process against a fresh database, counts every pg query and Redis command each request
 * issues (attributed through AsyncLocalStorage), and times the locks the charge holds.
 *
 *   npm run bench:queries            (BENCH_QUERIES_CHARGES, BENCH_QUERIES_CONCURRENCY)
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pg from 'pg';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createContainer } from '../src/container.js';
import { runMigrations } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { withTransaction } from '../src/db/transaction.js';
import { SYSTEM_ACTOR } from '../src/http/context.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { api, expectStatus, inParallel } from './http.js';
import { createDatabase, dropDatabase } from './postgres.js';
import { statementLabel } from './sql-label.js';

interface Call {
  kind: 'sql' | 'redis';
  label: string;
  start: number;
  end: number;
}
interface RequestTrace {
  calls: Call[];
}

const als = new AsyncLocalStorage<RequestTrace>();
const background: Call[] = [];

/** Files a call under the request it was issued for (looked up when it is issued). */
function recorder(): (call: Call) => void {
  const trace = als.getStore();
  return (call) => {
    if (trace) trace.calls.push(call);
    else background.push(call);
  };
}

/** Wraps pg.Client#query (pool.query ends up there too) and ioredis' sendCommand. */
function instrument(): void {
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0];
    const text =
      typeof first === 'string' ? first : ((first as { text?: string } | undefined)?.text ?? '');
    const call: Call = { kind: 'sql', label: statementLabel(text), start: now(), end: 0 };
    const record = recorder();
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args[args.length - 1] = (...cbArgs: unknown[]) => {
        call.end = now();
        record(call);
        return (last as (...a: unknown[]) => unknown)(...cbArgs);
      };
      return original.apply(this, args);
    }
    const result = original.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      return (result as Promise<unknown>).finally(() => {
        call.end = now();
        record(call);
      });
    }
    return result;
  };
  const redisProto = Redis.prototype as unknown as {
    sendCommand: (cmd: { name: string }, ...rest: unknown[]) => unknown;
  };
  const send = redisProto.sendCommand;
  redisProto.sendCommand = function (this: unknown, cmd: { name: string }, ...rest: unknown[]) {
    const call: Call = { kind: 'redis', label: `redis ${cmd.name}`, start: now(), end: now() };
    recorder()(call);
    return send.call(this, cmd, ...rest);
  };
}

const now = () => performance.now();

function listen(handler: Parameters<typeof createServer>[1]): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

interface ChargeCost {
  sql: number;
  redis: number;
  transactionMs: number;
  /** From the subscriber account UPDATE being sent until COMMIT returned. */
  accountLockMs: number;
  /** From the idempotency advisory lock being taken until COMMIT returned. */
  advisoryLockMs: number;
  totalMs: number;
  sequence: string[];
}

function costOf(trace: RequestTrace, totalMs: number): ChargeCost {
  const sql = trace.calls.filter((c) => c.kind === 'sql');
  const begin = sql.find((c) => c.label === 'BEGIN');
  const commit = [...sql].reverse().find((c) => c.label === 'COMMIT');
  const account = sql.find((c) => /UPDATE ledger_accounts/.test(c.label));
  const advisory = sql.find((c) => /advisory lock/.test(c.label));
  const end = commit?.end ?? 0;
  // The one-step charge statement is its own transaction: it takes both locks and commits, so
  // each lasts at most as long as the statement (as seen from the client).
  const oneStatement = begin ? undefined : sql.find((c) => /execute_one_step_charge/.test(c.label));
  if (oneStatement) {
    const ms = oneStatement.end - oneStatement.start;
    return {
      sql: sql.length,
      redis: trace.calls.length - sql.length,
      transactionMs: ms,
      accountLockMs: ms,
      advisoryLockMs: ms,
      totalMs,
      sequence: trace.calls.map((c) => c.label),
    };
  }
  return {
    sql: sql.length,
    redis: trace.calls.length - sql.length,
    transactionMs: begin && commit ? end - begin.start : 0,
    accountLockMs: account && commit ? end - account.start : 0,
    advisoryLockMs: advisory && commit ? end - advisory.start : 0,
    totalMs,
    sequence: trace.calls.map((c) => c.label),
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function main(): Promise<void> {
  const charges = Number(process.env.BENCH_QUERIES_CHARGES ?? 300);
  const concurrency = Number(process.env.BENCH_QUERIES_CONCURRENCY ?? 16);
  const baseUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const dbName = `dcb_bench_q_${runId}`;
  const databaseUrl = await createDatabase(baseUrl, dbName);
  instrument();
  const quiet = new Writable({ write: (_c, _e, cb) => cb() });
  const logger = createLogger('warn', quiet);
  let server: Server | undefined;
  let redis: Redis | undefined;
  let pool: pg.Pool | undefined;
  try {
    await runMigrations(databaseUrl, logger);
    const config = loadConfig({
      NODE_ENV: 'production',
      SANDBOX: 'false',
      DATABASE_URL: databaseUrl,
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      RATE_LIMIT_KEY_PREFIX: `bench-q-${runId}`,
      RATE_LIMIT_KEY_RATE: '1000000',
      RATE_LIMIT_KEY_BURST: '1000000',
      RATE_LIMIT_MSISDN_PER_MINUTE: '100000',
      OTP_HASH_SECRET: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'warn',
    });
    pool = createPool(
      {
        connectionString: databaseUrl,
        max: config.PG_POOL_MAX,
        statementTimeoutMs: config.PG_STATEMENT_TIMEOUT_MS,
      },
      logger,
    );
    redis = new Redis(config.REDIS_URL!, { maxRetriesPerRequest: 0, enableOfflineQueue: true });
    const c = createContainer({
      config,
      pool,
      redis,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    const app = buildApp(c);
    const traces = new Map<string, { trace: RequestTrace; ms: number }>();
    server = await listen((req, res) => {
      const trace: RequestTrace = { calls: [] };
      const started = now();
      const key = req.headers['idempotency-key'];
      res.on('finish', () => {
        if (typeof key === 'string') traces.set(key, { trace, ms: now() - started });
      });
      als.run(trace, () => app(req, res));
    });
    const address = server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

    const adminKey = (
      await withTransaction(pool, (tx) =>
        c.apiKeys.createKeyIn(tx, SYSTEM_ACTOR('bench'), { role: 'admin' }),
      )
    ).key;
    const carrier = await expectStatus<{ id: string }>(
      201,
      api(url, 'POST', '/v1/admin/carriers', adminKey, {
        code: `q-${runId}`,
        name: 'Query-count carrier',
        currency: 'VND',
        timezone: 'Asia/Ho_Chi_Minh',
        revenue_share_bps: 3000,
        limits: {
          prepaid: { per_transaction_max: '1000000000', daily_max: null, monthly_max: null },
        },
      }),
      'carrier',
    );
    const carrierKey = (
      await expectStatus<{ key: string }>(
        201,
        api(url, 'POST', '/v1/admin/api-keys', adminKey, { role: 'carrier', owner_id: carrier.id }),
        'carrier key',
      )
    ).key;
    const merchant = await expectStatus<{ id: string }>(
      201,
      api(url, 'POST', '/v1/admin/merchants', adminKey, {
        name: 'Query-count merchant',
        fee_bps: 250,
      }),
      'merchant',
    );
    const merchantKey = (
      await expectStatus<{ key: string }>(
        201,
        api(url, 'POST', '/v1/admin/api-keys', adminKey, {
          role: 'merchant',
          owner_id: merchant.id,
        }),
        'merchant key',
      )
    ).key;
    const msisdns = Array.from({ length: 200 }, (_, i) => `+8491${String(i).padStart(7, '0')}`);
    await inParallel(msisdns.length, 8, async (i) => {
      const msisdn = msisdns[i]!;
      await expectStatus(
        201,
        api(url, 'PUT', `/v1/carrier/subscribers/${msisdn}`, carrierKey, {
          funding_type: 'prepaid',
          status: 'active',
        }),
        'subscriber',
      );
      await expectStatus(
        201,
        api(
          url,
          'POST',
          `/v1/carrier/subscribers/${msisdn}/topups`,
          carrierKey,
          { amount: '1000000000', currency: 'VND', reference: `q-${i}` },
          { 'idempotency-key': `q-topup-${i}` },
        ),
        'topup',
      );
    });

    const charge = (n: number, key = `q-${runId}-${n}`) =>
      expectStatus(
        201,
        api(
          url,
          'POST',
          '/v1/charges',
          merchantKey,
          {
            msisdn: msisdns[n % msisdns.length],
            amount: '1000',
            currency: 'VND',
            description: 'query count',
          },
          { 'idempotency-key': key },
        ),
        `charge ${n}`,
      );

    // Warm caches (API key is not cached; party accounts and rate-limit policies are).
    for (let n = 0; n < 20; n++) await charge(n, `warm-${n}`);
    background.length = 0;

    const run = async (label: string, parallel: number, keys: string[], ns: number[]) => {
      traces.clear();
      const t0 = now();
      await inParallel(ns.length, parallel, async (i) => {
        await charge(ns[i]!, keys[i]);
      });
      const wall = now() - t0;
      const costs = keys.map((k) => costOf(traces.get(k)!.trace, traces.get(k)!.ms));
      return { label, parallel, wall, costs };
    };

    const seqNs = Array.from({ length: Math.min(100, charges) }, (_, i) => i);
    const seq = await run(
      'sequential',
      1,
      seqNs.map((n) => `q-${runId}-seq-${n}`),
      seqNs,
    );
    const parNs = Array.from({ length: charges }, (_, i) => i);
    const par = await run(
      `${concurrency} concurrent`,
      concurrency,
      parNs.map((n) => `q-${runId}-par-${n}`),
      parNs,
    );
    const replay = await run(
      'replay (sequential)',
      1,
      seqNs.map((n) => `q-${runId}-seq-${n}`),
      seqNs,
    );
    const backgroundSql = background.filter((c) => c.kind === 'sql').length;

    const lines: string[] = [];
    const example = seq.costs[seq.costs.length - 1]!;
    lines.push('One one-step charge (a fresh Idempotency-Key), in order:');
    example.sequence.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${s}`));
    lines.push('');
    lines.push('One replay (same key, same body), in order:');
    replay.costs[0]!.sequence.forEach((s, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${s}`));
    lines.push('');
    for (const r of [seq, par, replay]) {
      const f = (sel: (c: ChargeCost) => number) => {
        const xs = r.costs.map(sel);
        return `${mean(xs).toFixed(2)} avg / ${pct(xs, 99).toFixed(2)} p99`;
      };
      lines.push(
        `${r.label}: ${r.costs.length} charges, ${((r.costs.length / r.wall) * 1000).toFixed(0)}/s in process`,
        `  SQL statements per request   ${mean(r.costs.map((c) => c.sql)).toFixed(2)}`,
        `  Redis commands per request   ${mean(r.costs.map((c) => c.redis)).toFixed(2)}`,
        `  request ms                   ${f((c) => c.totalMs)}`,
        `  transaction ms (BEGIN→COMMIT) ${f((c) => c.transactionMs)}`,
        `  subscriber row lock ms       ${f((c) => c.accountLockMs)}`,
        `  idempotency advisory lock ms ${f((c) => c.advisoryLockMs)}`,
      );
    }
    lines.push(
      '',
      `background statements while the ${seq.costs.length + par.costs.length} charges ran (workers off): ${backgroundSql}`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await pool?.end();
    redis?.disconnect();
    await dropDatabase(baseUrl, dbName);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
