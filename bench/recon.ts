/**
 * Reconciliation at scale: 1,000,000 captured charges (plus 10,000 refunds) loaded straight into a
 * fresh database, the carrier's matching CSV written to a temp dir with a sprinkling of every
 * exception category, then reconciled in-process through the service. Prints the time, the
 * counts (checked against what the file was built to contain) and the peak RSS, which must stay
 * bounded; then closes the day's settlement statement over the same rows and times that too.
 *
 *   npm run bench:recon                       # local PostgreSQL (postgres@127.0.0.1:5432)
 *   BENCH_DATABASE_URL=postgres://… npm run bench:recon
 *   BENCH_RECON_ROWS=200000 npm run bench:recon
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { createContainer } from '../src/container.js';
import { runMigrations } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { SYSTEM_ACTOR } from '../src/http/context.js';
import { newId } from '../src/lib/ids.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';

const ROWS = Number(process.env.BENCH_RECON_ROWS ?? 1_000_000);
const SUBSCRIBERS = 10_000;
const RSS_LIMIT_MB = 300;
const adminUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const chargeId = (i: number) => `ch_bench${String(i).padStart(21, '0')}`;
const refundId = (i: number) => `re_bench${String(i).padStart(21, '0')}`;
const msisdnOf = (i: number) => `+8490${String((i % SUBSCRIBERS) + 1).padStart(7, '0')}`;
const amountOf = (i: number) => 1000 * (1 + (i % 50));

function mb(kb: number): string {
  return (kb / 1024).toFixed(1);
}

async function seed(db: pg.Client, carrierId: string, merchantId: string): Promise<number> {
  const { rows } = await db.query<{ start: Date }>(
    `SELECT ((now() AT TIME ZONE 'Asia/Ho_Chi_Minh')::date - 1)::timestamp AT TIME ZONE 'Asia/Ho_Chi_Minh' AS start`,
  );
  const dayStart = rows[0]!.start;
  await db.query(
    `INSERT INTO carriers (id, code, name, currency, timezone, revenue_share_bps, created_at)
     VALUES ($1, 'bench-recon', 'Bench carrier', 'VND', 'Asia/Ho_Chi_Minh', 3000, $2)`,
    [carrierId, dayStart],
  );
  await db.query(`INSERT INTO merchants (id, name, fee_bps) VALUES ($1, 'Bench merchant', 250)`, [
    merchantId,
  ]);
  await db.query(
    `INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot, floor)
     SELECT 'acc_bench' || i, 'subscriber', 'sub_bench' || i, 'VND', false, 0
       FROM generate_series(1, $1::int) i`,
    [SUBSCRIBERS],
  );
  await db.query(
    `INSERT INTO subscribers (id, carrier_id, msisdn, funding_type, status, account_id)
     SELECT 'sub_bench' || i, $1, '+8490' || lpad(i::text, 7, '0'), 'prepaid', 'active', 'acc_bench' || i
       FROM generate_series(1, $2::int) i`,
    [carrierId, SUBSCRIBERS],
  );
  // Amounts are multiples of 1,000, so the 30 % share and 2.5 % fee are exact; every 100th
  // charge is refunded in full a minute after its capture.
  await db.query(
    `INSERT INTO charges (id, merchant_id, carrier_id, subscriber_id, msisdn, funding_type, status, capture,
                          amount, currency, amount_captured, amount_refunded, revenue_share_bps, fee_bps,
                          carrier_share, gateway_fee, merchant_net, refunded_carrier_share,
                          refunded_gateway_fee, refunded_merchant_net, description, created_at, updated_at, captured_at)
     SELECT 'ch_bench' || lpad(i::text, 21, '0'), $1, $2, 'sub_bench' || (i % $4 + 1),
            '+8490' || lpad((i % $4 + 1)::text, 7, '0'), 'prepaid', 'succeeded', true,
            amt, 'VND', amt, CASE WHEN i % 100 = 0 THEN amt ELSE 0 END, 3000, 250,
            amt * 3 / 10, amt / 40, amt - amt * 3 / 10 - amt / 40,
            CASE WHEN i % 100 = 0 THEN amt * 3 / 10 ELSE 0 END,
            CASE WHEN i % 100 = 0 THEN amt / 40 ELSE 0 END,
            CASE WHEN i % 100 = 0 THEN amt - amt * 3 / 10 - amt / 40 ELSE 0 END,
            'bench', t, t, t
       FROM (SELECT i, 1000 * (1 + i % 50) AS amt, $3::timestamptz + i * interval '80 milliseconds' AS t
               FROM generate_series(1, $5::int) i) x`,
    [merchantId, carrierId, dayStart, SUBSCRIBERS, ROWS],
  );
  await db.query(
    `INSERT INTO refunds (id, charge_id, merchant_id, amount, currency, carrier_share, gateway_fee, merchant_net, created_at)
     SELECT 're_bench' || substr(id, 9), id, merchant_id, amount_captured, currency, carrier_share, gateway_fee,
            merchant_net, captured_at + interval '1 minute'
       FROM charges WHERE carrier_id = $1 AND amount_refunded > 0`,
    [carrierId],
  );
  await db.query('ANALYZE');
  return dayStart.getTime();
}

type Expected = Record<
  | 'matched'
  | 'amount_mismatch'
  | 'missing_at_carrier'
  | 'missing_at_gateway'
  | 'duplicate'
  | 'invalid_row',
  number
>;

/** Writes the carrier's file (streaming, with backpressure) and returns what it should yield. */
async function writeFile(file: string, dayStartMs: number): Promise<Expected> {
  const out = createWriteStream(file);
  const expected: Expected = {
    matched: 0,
    amount_mismatch: 0,
    missing_at_carrier: 0,
    missing_at_gateway: 0,
    duplicate: 0,
    invalid_row: 0,
  };
  const write = async (line: string) => {
    if (!out.write(line)) await once(out, 'drain');
  };
  const at = (ms: number) => new Date(ms).toISOString();
  await write('carrier_ref,gateway_ref,msisdn,type,amount,currency,occurred_at\n');
  for (let i = 1; i <= ROWS; i++) {
    const t = dayStartMs + i * 80;
    const ref = `VT${i}`;
    let amount = String(amountOf(i));
    let msisdn = msisdnOf(i);
    if (i % 50021 === 0) {
      expected.missing_at_carrier += 1;
    } else if (i % 40009 === 0) {
      await write(`${ref},${chargeId(i)},${msisdn},charge,abc,VND,${at(t)}\n`);
      expected.invalid_row += 1;
    } else {
      if (i % 10007 === 0) {
        amount = String(amountOf(i) + 1);
        expected.amount_mismatch += 1;
      } else if (i % 20011 === 0) {
        msisdn = '+84999999999';
        expected.amount_mismatch += 1;
      } else {
        expected.matched += 1;
      }
      await write(`${ref},${chargeId(i)},${msisdn},charge,${amount},VND,${at(t)}\n`);
      if (i % 30011 === 0) {
        await write(`${ref}-again,${chargeId(i)},${msisdn},charge,${amount},VND,${at(t)}\n`);
        expected.duplicate += 1;
      }
    }
    if (i % 100 === 0) {
      await write(
        `${ref}R,${refundId(i)},${msisdnOf(i)},refund,${amountOf(i)},VND,${at(t + 60_000)}\n`,
      );
      expected.matched += 1;
    }
  }
  const mid = at(dayStartMs + 3_600_000);
  for (let k = 0; k < 20; k++) {
    await write(
      `X${k},ch_unknown${String(k).padStart(19, '0')},+84901234567,charge,1000,VND,${mid}\n`,
    );
    expected.missing_at_gateway += 1;
  }
  for (let k = 0; k < 5; k++) {
    await write(`T${k},${chargeId(k + 1)}x,+84901234567,chargeback,1000,VND,${mid}\n`);
    await write(`C${k},${chargeId(k + 2)}x,+84901234567,charge,1000\n`);
    await write(`D${k},${chargeId(k + 3)}x,+84901234567,charge,1000,VND,yesterday\n`);
    expected.invalid_row += 3;
  }
  out.end();
  await once(out, 'finish');
  return expected;
}

async function main(): Promise<void> {
  const logger = createLogger('warn');
  const name = `dcb_bench_recon_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dcb-bench-recon-'));
  const pool = createPool(
    { connectionString: databaseUrl, max: 4, statementTimeoutMs: 600_000 },
    logger,
  );
  try {
    await runMigrations(databaseUrl, logger);
    const carrierId = newId('car');
    const merchantId = newId('mer');
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    let t = performance.now();
    const dayStartMs = await seed(db, carrierId, merchantId);
    await db.end();
    console.log(`seeded ${ROWS} charges in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const file = path.join(dir, 'statement.csv');
    t = performance.now();
    const expected = await writeFile(file, dayStartMs);
    const bytes = statSync(file).size;
    console.log(
      `wrote ${(bytes / 1024 ** 2).toFixed(1)} MiB of CSV in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );

    const config = loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', SANDBOX: 'false' });
    const c = createContainer({
      config,
      pool,
      redis: null,
      logger,
      metrics: createMetrics({ defaultMetrics: false }),
    });
    const rssBefore = process.resourceUsage().maxRSS;
    t = performance.now();
    const report = await c.reconciliations.reconcile(
      SYSTEM_ACTOR('bench'),
      carrierId,
      createReadStream(file),
      { source: 'cli' },
    );
    const seconds = (performance.now() - t) / 1000;
    const peak = process.resourceUsage().maxRSS;
    console.log(
      `reconciled ${report.rows} rows (${(bytes / 1024 ** 2).toFixed(1)} MiB) in ${seconds.toFixed(1)} s` +
        ` — ${Math.round(report.rows / seconds)} rows/s`,
    );
    console.log('counts  ', JSON.stringify(report.counts));
    console.log('expected', JSON.stringify(expected));

    t = performance.now();
    let exceptions = 0;
    for await (const page of c.reconciliations.exceptionPages(report.id)) exceptions += page.length;
    console.log(
      `streamed ${exceptions} exceptions in ${((performance.now() - t) / 1000).toFixed(2)} s`,
    );

    await pool.query('UPDATE carriers SET created_at = $2 WHERE id = $1', [
      carrierId,
      new Date(dayStartMs),
    ]);
    await c.settlements.openStatements();
    const { rows } = await pool.query<{ id: string }>(
      'SELECT id FROM settlement_statements WHERE carrier_id = $1 ORDER BY business_date LIMIT 1',
      [carrierId],
    );
    t = performance.now();
    const closed = await c.settlements.closeStatement(SYSTEM_ACTOR('bench'), rows[0]!.id);
    console.log(
      `closed the day's statement (${closed.totals?.charge_count} charges, ${closed.totals?.refund_count} refunds)` +
        ` in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );

    const final = process.resourceUsage().maxRSS;
    console.log(
      `peak RSS ${mb(peak)} MB during the reconciliation (${mb(rssBefore)} MB before it), ${mb(final)} MB overall; limit ${RSS_LIMIT_MB} MB`,
    );
    const countsOk = JSON.stringify(report.counts) === JSON.stringify(expected);
    const exceptionsOk =
      exceptions === Object.values(expected).reduce((s, n) => s + n, 0) - expected.matched;
    if (!countsOk || !exceptionsOk || peak / 1024 > RSS_LIMIT_MB) {
      console.error('FAILED: counts, exception download or memory bound not as expected');
      process.exitCode = 1;
    }
  } finally {
    await pool.end();
    // pool.end() resolves before the sockets have closed; let them go before the forced drop.
    await new Promise((r) => setTimeout(r, 500));
    if (process.env.BENCH_KEEP_DATABASE === '1') console.log(`kept database ${name}`);
    else await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
