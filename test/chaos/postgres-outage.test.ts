import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapDbError } from '../../src/db/errors.js';
import { createPool } from '../../src/db/pool.js';
import { withTransaction } from '../../src/db/transaction.js';
import { createLogger } from '../../src/logger.js';
import { createHarness, newAdminKey, type Harness } from '../helpers/harness.js';
import { dropFreshDatabases, openFreshDatabase } from './helpers/chaos-db.js';
import { bearerHeaders, call, ConnectionLost, sleep, type Answer } from './helpers/http-client.js';
import { sendUntilAnswered, type KeyedRequest } from './helpers/retrying-client.js';
import { ledgerVerify, seedTenants, type Tenants } from './helpers/tenants.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

/**
 * SPEC §2.4–2.5 and §3.1 with PostgreSQL unreachable: the gateway's connections to it go through
 * a TCP proxy that is cut (every connection dropped, new ones refused), and later its backends are
 * terminated from the server side. Meanwhile merchants keep charging, capturing and refunding.
 */

const WORKERS = 6;

let databaseUrl: string;
let db: pg.Client;
let proxy: TcpProxy;
let h: Harness;
let server: Server;
let baseUrl: string;
let adminKey: string;
let tenants: Tenants;

beforeAll(async () => {
  ({ databaseUrl, db } = await openFreshDatabase('pgoutage'));
  proxy = TcpProxy.for(databaseUrl, 5432);
  await proxy.start();
  h = await createHarness({
    databaseUrl: proxy.rewrite(databaseUrl),
    env: { PG_POOL_MAX: '10' },
  });
  server = h.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  adminKey = await newAdminKey(h);
  tenants = await seedTenants(baseUrl, adminKey, { subscribers: 12, balance: '50000000' });
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.close();
  await proxy?.stop();
  await db?.end();
  await dropFreshDatabases();
});

type Phase = 'before' | 'outage' | 'recovering' | 'recovered';

interface Seen {
  request: KeyedRequest;
  phase: Phase;
  at: number;
  doneAt?: number;
  answer?: Answer;
  lost?: string;
}

const suffix = () => randomBytes(6).toString('hex');

describe('PostgreSQL outage under load', () => {
  it('a connection lost while a transaction waits between statements fails that transaction with a 503, and does not crash the process', async () => {
    const pool = createPool(
      {
        connectionString: databaseUrl,
        max: 2,
        statementTimeoutMs: 5000,
        applicationName: 'dcb-chaos-victim',
      },
      createLogger('silent'),
    );
    try {
      const failure: unknown = await withTransaction(pool, async (tx) => {
        await tx.query('SELECT 1');
        await db.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name = 'dcb-chaos-victim'`,
        );
        // The server's FATAL arrives while no query is running on this client.
        await sleep(300);
        await tx.query('SELECT 1');
      }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(mapDbError(failure).code).toBe('service_unavailable');
      // The broken client was discarded: the pool serves again.
      const { rows } = await pool.query<{ one: number }>('SELECT 1 AS one');
      expect(rows[0]!.one).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('answers 503 problem+json with Retry-After (never 500), writes nothing half-way, and recovers without a restart', async () => {
    let phase: Phase = 'before';
    let recoveredAt = 0;
    const seen: Seen[] = [];
    const send = async (path: string, body: Record<string, unknown>, key = `k-${suffix()}`) => {
      const request: KeyedRequest = {
        key,
        method: 'POST',
        path,
        body,
        apiKey: tenants.merchant.key,
      };
      const s: Seen = { request, phase, at: performance.now() };
      seen.push(s);
      try {
        s.answer = await call(baseUrl, 'POST', path, {
          headers: bearerHeaders(request.apiKey, { 'idempotency-key': key }),
          body,
          timeoutMs: 20_000,
        });
      } catch (err) {
        if (!(err instanceof ConnectionLost)) throw err;
        s.lost = err.code;
      }
      s.doneAt = performance.now();
      return s;
    };
    const body201 = (s: Seen) =>
      s.answer && (s.answer.status === 201 || s.answer.status === 200)
        ? (JSON.parse(s.answer.text) as { id: string })
        : undefined;

    async function session(): Promise<void> {
      const msisdn = tenants.msisdns[Math.floor(Math.random() * tenants.msisdns.length)]!;
      const amount = 1000 + Math.floor(Math.random() * 9000);
      const capture = Math.random() < 0.5;
      const key = `k-${suffix()}`;
      const created = await send(
        '/v1/charges',
        {
          msisdn,
          amount: String(amount),
          currency: 'VND',
          description: 'chaos: postgres outage',
          merchant_reference: key,
          capture,
        },
        key,
      );
      const charge = body201(created);
      if (!charge) return;
      if (!capture) {
        const captured = await send(`/v1/charges/${charge.id}/capture`, {});
        if (!body201(captured)) return;
      }
      const refundKey = `r-${suffix()}`;
      await send(
        `/v1/charges/${charge.id}/refunds`,
        { amount: String(Math.ceil(amount / 2)), reason: refundKey },
        refundKey,
      );
    }

    let loading = true;
    const workers = Array.from({ length: WORKERS }, async () => {
      while (loading) {
        await session();
        await sleep(5);
      }
    });

    await sleep(1500);
    // Outage 1: the network path to PostgreSQL is gone: connections cut, new ones refused.
    phase = 'outage';
    const outageAt = performance.now();
    await proxy.stop();
    await sleep(3000);
    phase = 'recovering';
    const backAt = performance.now();
    await proxy.start();
    await waitForSuccess(seen, 15_000);
    recoveredAt = performance.now();
    phase = 'recovered';
    await sleep(1500);
    // Outage 2: PostgreSQL ends the gateway's sessions (admin shutdown, 57P01) under load.
    const terminated = await db.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'dcb-gateway'`,
    );
    await sleep(1500);
    loading = false;
    await Promise.all(workers);

    const answered = seen.filter((s) => s.answer);
    const statuses = countBy(answered.map((s) => `${s.phase} ${s.answer!.status}`));
    console.log(
      'postgres outage:',
      JSON.stringify({ requests: seen.length, terminated: terminated.rowCount, statuses }),
    );

    // Never a 500, never a dropped connection: errors are problem+json, unavailability is a 503
    // with Retry-After.
    expect(seen.filter((s) => s.lost).map((s) => s.lost)).toEqual([]);
    const bad = answered.filter((s) => {
      const a = s.answer!;
      if (a.status < 400) return false;
      if (!String(a.headers['content-type']).startsWith('application/problem+json')) return true;
      if (a.status !== 503) return true;
      const body = JSON.parse(a.text) as { code?: string; status?: number };
      return (
        body.code !== 'service_unavailable' ||
        body.status !== 503 ||
        !/^[1-9]\d*$/.test(String(a.headers['retry-after']))
      );
    });
    expect(bad.map((s) => `${s.phase} ${s.answer!.status} ${s.answer!.text}`)).toEqual([]);
    // While PostgreSQL was unreachable nothing succeeded (a request that started then and waited
    // for a connection may succeed once it is back).
    expect(
      answered.filter(
        (s) => s.answer!.status < 300 && s.doneAt! > outageAt + 500 && s.doneAt! < backAt,
      ),
    ).toEqual([]);
    expect(
      answered.filter((s) => s.phase === 'outage' && s.answer!.status === 503).length,
    ).toBeGreaterThan(0);
    expect(answered.some((s) => s.phase === 'before' && s.answer!.status === 201)).toBe(true);
    // Recovered without a restart: a second after the first success everything succeeds again,
    // except requests caught by the terminated sessions.
    const settled = answered.filter(
      (s) => s.phase === 'recovered' && s.at > recoveredAt + 1000 && s.answer!.status !== 503,
    );
    expect(settled.length).toBeGreaterThan(0);
    expect(settled.filter((s) => s.answer!.status >= 300).map((s) => s.answer!.text)).toEqual([]);

    // Every request that got a 503 is retried with its key now: it runs once, or replays.
    const unavailable = seen.filter((s) => s.answer?.status === 503);
    expect(unavailable.length).toBeGreaterThan(0);
    let replayedAfter503 = 0;
    let retried = 0;
    const finals = new Map<string, { status: number; text: string }>();
    for (const s of seen) {
      if (s.answer && s.answer.status !== 503) finals.set(s.request.key, s.answer);
    }
    for (const s of unavailable) {
      if (finals.has(s.request.key)) continue;
      retried += 1;
      const record = await sendUntilAnswered(baseUrl, s.request, { deadlineMs: 20_000 });
      expect(record.answers.length, s.request.key).toBe(1);
      expect([200, 201]).toContain(record.answers[0]!.status);
      if (record.answers[0]!.replayed) replayedAfter503 += 1;
      finals.set(s.request.key, record.answers[0]!);
    }
    console.log(
      'postgres outage, retried:',
      JSON.stringify({
        recoveryMs: Math.round(recoveredAt - backAt),
        unavailable: unavailable.length,
        retried,
        replayedAfter503,
      }),
    );

    await assertNothingHalfWritten(finals);
    expect((await ledgerVerify(baseUrl, adminKey)).ok).toBe(true);
  });
});

async function waitForSuccess(seen: Seen[], timeoutMs: number): Promise<void> {
  const from = seen.length;
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (seen.slice(from).some((s) => s.answer && s.answer.status < 300)) return;
    await sleep(50);
  }
  throw new Error(`no request succeeded within ${timeoutMs} ms of PostgreSQL coming back`);
}

function countBy(xs: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
}

/** Each acknowledged request is in the database whole; nothing else is. */
async function assertNothingHalfWritten(
  finals: Map<string, { status: number; text: string }>,
): Promise<void> {
  const merchantId = tenants.merchant.id;
  const keys = await db.query<{ key: string; response_body: string }>(
    'SELECT key, response_body FROM idempotency_keys WHERE owner_id = $1',
    [merchantId],
  );
  expect(keys.rows.length).toBe(finals.size);
  for (const row of keys.rows) expect(row.response_body).toBe(finals.get(row.key)?.text);

  const charges = await db.query<{ id: string; merchant_reference: string; status: string }>(
    'SELECT id, merchant_reference, status FROM charges WHERE merchant_id = $1',
    [merchantId],
  );
  const chargeKeys = [...finals.keys()].filter((k) =>
    charges.rows.some((c) => c.merchant_reference === k),
  );
  expect(new Set(charges.rows.map((c) => c.merchant_reference)).size).toBe(charges.rows.length);
  expect(chargeKeys.length).toBe(charges.rows.length);

  // A succeeded charge has its capture posting; a reserved one its active hold; a refund its posting.
  const orphans = await db.query(
    `SELECT c.id, c.status FROM charges c
      WHERE c.merchant_id = $1 AND (
        (c.status = 'succeeded' AND NOT EXISTS (
           SELECT 1 FROM journal_transactions j WHERE j.kind = 'capture' AND j.reference_id = c.id))
        OR (c.status = 'reserved' AND NOT EXISTS (
           SELECT 1 FROM ledger_holds hd WHERE hd.id = c.id AND hd.status = 'active')))
     UNION ALL
     SELECT r.id, 'refund' FROM refunds r
      WHERE r.merchant_id = $1 AND NOT EXISTS (
        SELECT 1 FROM journal_transactions j WHERE j.kind = 'refund' AND j.reference_id = r.id)`,
    [merchantId],
  );
  expect(orphans.rows).toEqual([]);
  const postings = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM journal_transactions j
      WHERE j.kind = 'capture' AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.id = j.reference_id)`,
  );
  expect(postings.rows[0]!.n).toBe(0);
}
