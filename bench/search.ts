/**
 * Admin charge search at scale: a fresh database with 1,000,000 charges loaded with SQL (20
 * merchants, one of them taking 40 % of the traffic; 3 carriers; 30,000 subscribers; every status;
 * amounts from 1,000 to 100,000 VND; spread over the last 30 days), ANALYZEd, then
 * `EXPLAIN (ANALYZE, BUFFERS)` of the exact statements the search service runs for the main admin
 * searches. Prints each plan's nodes (with the index used), rows and execution time, and fails
 * when a search reads the charges table with a sequential scan. Drops the database at the end.
 *
 *   npm run bench:search                        # local PostgreSQL (postgres@127.0.0.1:5432)
 *   BENCH_DATABASE_URL=postgres://… npm run bench:search
 *   BENCH_SEARCH_ROWS=200000 npm run bench:search
 */
import pg from 'pg';
import type { Queryable } from '../src/db/pool.js';
import { runMigrations } from '../src/db/migrate.js';
import { createLogger } from '../src/logger.js';
import * as searchRepo from '../src/modules/search/search-repo.js';
import type { AdminChargeFilter } from '../src/modules/search/search-types.js';

const ROWS = Number(process.env.BENCH_SEARCH_ROWS ?? 1_000_000);
const MERCHANTS = 20;
const CARRIERS = 3;
const SUBSCRIBERS = 30_000;
const PAGE = 20;
const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const merchantId = (m: number) => `mer_bench${String(m).padStart(21, '0')}`;
const carrierId = (c: number) => `car_bench${String(c).padStart(21, '0')}`;
const msisdnOf = (s: number) => `+8490${String(s).padStart(7, '0')}`;
/** Subscriber s's carrier: 50 %, 45 % and 5 % of the subscribers (the last a small operator). */
const CARRIER_OF_SUBSCRIBER = (s: string) =>
  `'car_bench' || lpad((CASE WHEN ${s} % 20 < 10 THEN 0 WHEN ${s} % 20 < 19 THEN 1 ELSE 2 END)::text, 21, '0')`;

function seconds(since: number): string {
  return ((performance.now() - since) / 1000).toFixed(1);
}

async function seed(db: pg.Client): Promise<void> {
  await db.query(
    `INSERT INTO carriers (id, code, name, currency, timezone, revenue_share_bps)
     SELECT 'car_bench' || lpad(c::text, 21, '0'), 'bench-' || c, 'Bench carrier ' || c, 'VND',
            'Asia/Ho_Chi_Minh', 3000
       FROM generate_series(0, $1::int - 1) c`,
    [CARRIERS],
  );
  await db.query(
    `INSERT INTO merchants (id, name, fee_bps)
     SELECT 'mer_bench' || lpad(m::text, 21, '0'), 'Bench merchant ' || m, 250
       FROM generate_series(0, $1::int - 1) m`,
    [MERCHANTS],
  );
  await db.query(
    `INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot, floor)
     SELECT 'acc_bench' || lpad(s::text, 21, '0'), 'subscriber', 'sub_bench' || lpad(s::text, 21, '0'),
            'VND', false, 0
       FROM generate_series(0, $1::int - 1) s`,
    [SUBSCRIBERS],
  );
  await db.query(
    `INSERT INTO subscribers (id, carrier_id, msisdn, funding_type, status, account_id)
     SELECT 'sub_bench' || lpad(s::text, 21, '0'), ${CARRIER_OF_SUBSCRIBER('s')},
            '+8490' || lpad(s::text, 7, '0'), 'prepaid', 'active', 'acc_bench' || lpad(s::text, 21, '0')
       FROM generate_series(0, $1::int - 1) s`,
    [SUBSCRIBERS],
  );
  // Charge i: 40 % to merchant 0, the rest spread over the others; a subscriber (whose carrier
  // takes 50, 45 or 5 % of them); statuses 85 % succeeded, 7 % denied, 4 % cancelled, 3 %
  // reserved, 1 % pending_validation; amounts 1,000 to 100,000 VND; created evenly over the last
  // 30 days, oldest first. Each attribute comes from its own hash of i, so none correlates with
  // another (a search for a rare combination still finds its share of rows).
  await db.query(
    `INSERT INTO charges (id, merchant_id, carrier_id, subscriber_id, msisdn, funding_type, status,
                          capture, amount, currency, amount_held, amount_captured, revenue_share_bps,
                          fee_bps, carrier_share, gateway_fee, merchant_net, description, denial_code,
                          cancellation_reason, created_at, updated_at, captured_at)
     SELECT 'ch_bench' || lpad(i::text, 21, '0'),
            'mer_bench' || lpad((CASE WHEN h1 % 100 < 40 THEN 0 ELSE 1 + h2 % ($2::int - 1) END)::text, 21, '0'),
            ${CARRIER_OF_SUBSCRIBER('s')},
            'sub_bench' || lpad(s::text, 21, '0'),
            '+8490' || lpad(s::text, 7, '0'),
            'prepaid', st, st <> 'pending_validation', amt, 'VND',
            CASE WHEN st IN ('reserved', 'pending_validation') THEN amt ELSE 0 END,
            CASE WHEN st = 'succeeded' THEN amt ELSE 0 END,
            3000, 250,
            CASE WHEN st = 'succeeded' THEN amt * 3 / 10 END,
            CASE WHEN st = 'succeeded' THEN amt / 40 END,
            CASE WHEN st = 'succeeded' THEN amt - amt * 3 / 10 - amt / 40 END,
            'bench',
            CASE WHEN st = 'denied' THEN 'insufficient_funds' END,
            CASE WHEN st = 'cancelled' THEN 'merchant' END,
            t, t, CASE WHEN st = 'succeeded' THEN t END
       FROM (SELECT i, h1, h2, h3 % $3 AS s, 1000 * (1 + h5 % 100) AS amt,
                    CASE WHEN h4 % 100 < 85 THEN 'succeeded' WHEN h4 % 100 < 92 THEN 'denied'
                         WHEN h4 % 100 < 96 THEN 'cancelled' WHEN h4 % 100 < 99 THEN 'reserved'
                         ELSE 'pending_validation' END AS st,
                    now() - interval '30 days' + (i::float8 / $1) * interval '30 days' AS t
               FROM (SELECT i, abs(hashint8(i * 8 + 1)::bigint) AS h1,
                            abs(hashint8(i * 8 + 2)::bigint) AS h2,
                            abs(hashint8(i * 8 + 3)::bigint) AS h3,
                            abs(hashint8(i * 8 + 4)::bigint) AS h4,
                            abs(hashint8(i * 8 + 5)::bigint) AS h5
                       FROM generate_series(1::bigint, $1::bigint) i) hashed) x`,
    [ROWS, MERCHANTS, SUBSCRIBERS],
  );
  await db.query('ANALYZE');
}

/** A Queryable that keeps the statement instead of running it: the repo's exact SQL. */
function recorder(): Queryable & { text: string; values: unknown[] } {
  const q = {
    text: '',
    values: [] as unknown[],
    query<R extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
      q.text = text;
      q.values = values;
      return Promise.resolve({ rows: [] as R[], rowCount: 0 } as pg.QueryResult<R>);
    },
  };
  return q;
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

function describeNodes(node: PlanNode, depth = 0, out: string[] = []): string[] {
  const target = node['Index Name'] ?? node['Relation Name'];
  out.push(
    `${'  '.repeat(depth)}${node['Node Type']}${target ? ` on ${target}` : ''}` +
      ` (rows ${node['Actual Rows']}${(node['Actual Loops'] ?? 1) > 1 ? ` × ${node['Actual Loops']} loops` : ''})`,
  );
  for (const child of node.Plans ?? []) describeNodes(child, depth + 1, out);
  return out;
}

function seqScansOnCharges(node: PlanNode): number {
  const own = node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'charges' ? 1 : 0;
  return own + (node.Plans ?? []).reduce((n, child) => n + seqScansOnCharges(child), 0);
}

async function printIndexSizes(db: pg.Client): Promise<void> {
  const { rows } = await db.query<{ name: string; size: string }>(
    `SELECT c.relname AS name, pg_size_pretty(pg_relation_size(c.oid)) AS size
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = 'charges'::regclass ORDER BY pg_relation_size(c.oid) DESC`,
  );
  console.log('\nindexes of charges:');
  for (const r of rows) console.log(`  ${r.name.padEnd(40)} ${r.size}`);
}

/** The search indexes of migration 0010; the write cost is measured with and without them. */
const SEARCH_INDEXES = [
  'charges_created_idx',
  'charges_merchant_created_idx',
  'charges_merchant_status_created_idx',
  'charges_carrier_created_idx',
];

/**
 * What the search indexes cost the charge path: the time to insert a batch of charges (each row
 * one INSERT, as the gateway writes them) with every index, without the four search indexes, and
 * with them rebuilt.
 */
async function measureWriteCost(db: pg.Client): Promise<void> {
  const batch = Math.min(20_000, ROWS / 10);
  const insertBatch = async (from: number): Promise<number> => {
    const t = performance.now();
    await db.query(
      `DO $$
       BEGIN
         FOR i IN ${from}..${from + batch - 1} LOOP
           INSERT INTO charges (id, merchant_id, carrier_id, subscriber_id, msisdn, funding_type,
                                status, capture, amount, currency, revenue_share_bps, fee_bps,
                                description)
           SELECT 'ch_write' || lpad(i::text, 21, '0'), merchant_id, carrier_id, subscriber_id,
                  msisdn, funding_type, 'reserved', false, amount, currency, revenue_share_bps,
                  fee_bps, description
             FROM charges WHERE id = 'ch_bench' || lpad((1 + i % ${ROWS})::text, 21, '0');
         END LOOP;
       END $$`,
    );
    return (performance.now() - t) / batch;
  };
  await insertBatch(1); // warm
  const { rows: definitions } = await db.query<{ sql: string }>(
    'SELECT indexdef AS sql FROM pg_indexes WHERE indexname = ANY($1)',
    [SEARCH_INDEXES],
  );
  // With, without, and with the indexes again, so neither side has the warmer cache.
  const withAll = await insertBatch(1 + batch);
  for (const name of SEARCH_INDEXES) await db.query(`DROP INDEX ${name}`);
  const without = await insertBatch(1 + 2 * batch);
  for (const d of definitions) await db.query(d.sql);
  const withAgain = await insertBatch(1 + 3 * batch);
  const us = (ms: number) => `${(ms * 1000).toFixed(1)} µs`;
  console.log(
    `\ninserting one charge row (${batch} rows a batch, one INSERT each): ` +
      `${us(withAll)} and ${us(withAgain)} with every index, ` +
      `${us(without)} without the four search indexes`,
  );
}

interface Search {
  label: string;
  filter: AdminChargeFilter;
  /** Charge number (1 = oldest) whose position is the cursor. */
  cursorCharge?: number;
}

async function main(): Promise<void> {
  const logger = createLogger('warn');
  const name = `dcb_bench_search_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const db = new pg.Client({ connectionString: databaseUrl });
  try {
    await runMigrations(databaseUrl, logger);
    await db.connect();
    const started = performance.now();
    await seed(db);
    const { rows: size } = await db.query<{ table: string; indexes: string }>(
      `SELECT pg_size_pretty(pg_table_size('charges')) AS table,
              pg_size_pretty(pg_indexes_size('charges')) AS indexes`,
    );
    console.log(
      `loaded and analyzed ${ROWS} charges in ${seconds(started)} s ` +
        `(table ${size[0]!.table}, its indexes ${size[0]!.indexes})`,
    );

    const { rows: window } = await db.query<{ gte: string; lt: string }>(
      `SELECT to_char((now() - interval '17 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS gte,
              to_char((now() - interval '10 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS lt`,
    );
    const week = { createdGte: window[0]!.gte, createdLt: window[0]!.lt };
    const hot = merchantId(0);
    const small = merchantId(7);
    const middle = ROWS / 2;
    const searches: Search[] = [
      {
        label: 'merchant with 40 % of the traffic + status succeeded + 7-day range',
        filter: { merchantId: hot, status: 'succeeded', ...week },
      },
      {
        label: 'merchant with 3 % of the traffic + status reserved + 7-day range',
        filter: { merchantId: small, status: 'reserved', ...week },
      },
      { label: 'msisdn', filter: { msisdn: msisdnOf(12_345) } },
      {
        label: 'carrier with 50 % of the traffic + amount 50,000–51,000 VND',
        filter: {
          carrierId: carrierId(0),
          currency: 'VND',
          amountGte: 50_000n,
          amountLte: 51_000n,
        },
      },
      {
        label: 'carrier with 5 % of the traffic + amount 50,000–51,000 VND',
        filter: {
          carrierId: carrierId(2),
          currency: 'VND',
          amountGte: 50_000n,
          amountLte: 51_000n,
        },
      },
      {
        // The worst case of a filter the index does not cover: nothing matches, so the scan
        // reads the carrier's whole range before it can answer an empty page.
        label: 'carrier with 5 % of the traffic + amount over 100,000 VND (matches nothing)',
        filter: { carrierId: carrierId(2), currency: 'VND', amountGte: 100_001n },
      },
      { label: 'unfiltered newest page', filter: {} },
      { label: 'merchant with 3 % of the traffic, newest page', filter: { merchantId: small } },
      {
        label: `unfiltered deep page (cursor at charge ${middle})`,
        filter: {},
        cursorCharge: middle,
      },
      {
        label: `merchant with 3 % of the traffic, deep page (cursor at charge ${middle})`,
        filter: { merchantId: small },
        cursorCharge: middle,
      },
      { label: 'time range alone (7 days)', filter: week },
    ];

    let failures = 0;
    for (const s of searches) {
      const after =
        s.cursorCharge === undefined
          ? undefined
          : await searchRepo.findChargePosition(
              db,
              `ch_bench${String(s.cursorCharge).padStart(21, '0')}`,
            );
      const rec = recorder();
      await searchRepo.searchCharges(rec, s.filter, { limit: PAGE, after });
      const explain = `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${rec.text}`;
      await db.query(explain, rec.values); // warm the cache, as a page after the first would be
      const { rows } = await db.query<{
        'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }];
      }>(explain, rec.values);
      const result = rows[0]!['QUERY PLAN'][0];
      const seq = seqScansOnCharges(result.Plan);
      if (seq > 0) failures++;
      console.log(
        `\n${s.label}: ${result['Execution Time'].toFixed(2)} ms, ${result.Plan['Actual Rows']} rows, ` +
          `${result.Plan['Shared Hit Blocks'] ?? 0} buffers hit, ${result.Plan['Shared Read Blocks'] ?? 0} read` +
          (seq > 0 ? '  <-- SEQUENTIAL SCAN OF charges' : ''),
      );
      for (const line of describeNodes(result.Plan)) console.log(`  ${line}`);
    }
    await printIndexSizes(db);
    await measureWriteCost(db);
    if (failures > 0) {
      console.error(`\nFAILED: ${failures} search(es) scanned the charges table sequentially`);
      process.exitCode = 1;
    }
  } finally {
    await db.end().catch(() => undefined);
    if (process.env.BENCH_KEEP_DATABASE === '1') console.log(`kept database ${name}`);
    else await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

await main();
