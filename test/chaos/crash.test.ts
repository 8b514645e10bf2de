import http from 'node:http';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropFreshDatabases } from './helpers/chaos-db.js';
import { startSeededGateway } from './helpers/seeded-gateway.js';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.js';
import { sleep, waitUntil } from './helpers/http-client.js';
import {
  sendUntilAnswered,
  tally,
  type KeyedRecord,
  type KeyedRequest,
} from './helpers/retrying-client.js';
import { addSubscriber, ledgerVerify, type Tenants } from './helpers/tenants.js';

/**
 * SPEC §2.1 and §2.4 under `kill -9`: the gateway runs as a production process and is killed
 * three times while merchants charge, reserve, capture, cancel and refund. Every request whose
 * answer was lost is retried with its key until it gets one. Afterwards each request has had
 * exactly one effect, every answer for a key is the same, and the books balance.
 */

const CRASHES = 3;
const WORKERS = 8;
const BALANCE = 50_000_000;

let db: pg.Client;
let env: Record<string, string>;
let gateway: GatewayProcess;
let adminKey: string;
let tenants: Tenants;
let poorMsisdn: string;

beforeAll(async () => {
  ({ db, env, gateway, adminKey, tenants } = await startSeededGateway('crash', {
    subscribers: 24,
    balance: String(BALANCE),
  }));
  // A subscriber with nothing on the account: its charges are denied, and denials are exactly-once too.
  poorMsisdn = await addSubscriber(gateway.baseUrl, tenants.carrier.key, '0');
});

afterAll(async () => {
  if (gateway) {
    gateway.signal('SIGKILL');
    await gateway.exited;
  }
  await db?.end();
  await dropFreshDatabases();
});

const suffix = () => randomBytes(6).toString('hex');
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const amountBetween = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));

/** The fields of a charge, refund or denial answer that the checks read. */
interface AnswerBody {
  id: string;
  charge_id?: string;
}

interface Flow {
  kind: 'charge' | 'reserve' | 'capture' | 'cancel' | 'refund' | 'denied';
  record: KeyedRecord;
  /** For captures: the captured amount; for refunds: the refunded amount. */
  amount?: number;
  chargeKey?: string;
}

describe('crash under load (kill -9, three times)', () => {
  it('every acknowledged request has exactly one effect, every retry gets the original answer, the books balance', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS });
    const baseUrl = gateway.baseUrl;
    const flows: Flow[] = [];
    const merchantKey = tenants.merchant.key;

    const send = async (
      kind: Flow['kind'],
      path: string,
      body: Record<string, unknown>,
      key: string,
      extra: Partial<Flow> = {},
    ) => {
      const request: KeyedRequest = { key, method: 'POST', path, body, apiKey: merchantKey };
      const flow: Flow = {
        kind,
        record: await sendUntilAnswered(baseUrl, request, { agent }),
        ...extra,
      };
      flows.push(flow);
      return flow;
    };
    const final = (flow: Flow) => {
      const answer = flow.record.answers[0];
      if (!answer) throw new Error(`no answer for ${flow.kind} ${flow.record.request.key}`);
      return { status: answer.status, body: JSON.parse(answer.text) as AnswerBody };
    };
    const createCharge = (
      kind: 'charge' | 'reserve' | 'denied',
      msisdn: string,
      amount: number,
    ) => {
      const key = `${kind}-${suffix()}`;
      return send(
        kind,
        '/v1/charges',
        {
          msisdn,
          amount: String(amount),
          currency: 'VND',
          description: 'chaos: crash under load',
          merchant_reference: key,
          capture: kind !== 'reserve',
        },
        key,
      );
    };
    const refund = async (chargeId: string, chargeKey: string, amount?: number) => {
      const key = `refund-${suffix()}`;
      return send(
        'refund',
        `/v1/charges/${chargeId}/refunds`,
        amount === undefined ? { reason: key } : { amount: String(amount), reason: key },
        key,
        { amount, chargeKey },
      );
    };

    /** One merchant's session: a purchase and what follows it. */
    async function session(): Promise<void> {
      const roll = Math.random();
      const msisdn = pick(tenants.msisdns);
      if (roll < 0.08) {
        await createCharge('denied', poorMsisdn, amountBetween(1000, 5000));
        return;
      }
      const amount = amountBetween(2000, 20_000);
      if (roll < 0.5) {
        const charge = await createCharge('charge', msisdn, amount);
        const c = final(charge);
        if (c.status !== 201 || Math.random() < 0.5) return;
        const part = amountBetween(1, amount - 1);
        await refund(c.body.id, charge.record.request.key, part);
        if (Math.random() < 0.5) await refund(c.body.id, charge.record.request.key);
        return;
      }
      const reservation = await createCharge('reserve', msisdn, amount);
      const r = final(reservation);
      if (r.status !== 201) return;
      const next = Math.random();
      if (next < 0.15) return; // left to expire
      if (next < 0.3) {
        const key = `cancel-${suffix()}`;
        await send('cancel', `/v1/charges/${r.body.id}/cancel`, {}, key, {
          chargeKey: reservation.record.request.key,
        });
        return;
      }
      const captured = Math.random() < 0.5 ? amount : amountBetween(1, amount);
      const key = `capture-${suffix()}`;
      const capture = await send(
        'capture',
        `/v1/charges/${r.body.id}/capture`,
        captured === amount ? {} : { amount: String(captured) },
        key,
        { amount: captured, chargeKey: reservation.record.request.key },
      );
      if (final(capture).status === 200 && Math.random() < 0.5) {
        await refund(r.body.id, reservation.record.request.key);
      }
    }

    let loading = true;
    const workers = Array.from({ length: WORKERS }, async () => {
      while (loading) await session();
    });
    const crashes: { at: number; downMs: number }[] = [];
    const started = Date.now();
    for (let i = 0; i < CRASHES; i++) {
      await sleep(2500 + Math.random() * 1500);
      const killedAt = Date.now();
      gateway.signal('SIGKILL');
      const exit = await gateway.exited;
      expect(exit.signal).toBe('SIGKILL');
      await sleep(200 + Math.random() * 400);
      gateway = await startGateway(env);
      crashes.push({ at: killedAt - started, downMs: Date.now() - killedAt });
    }
    await sleep(2000);
    loading = false;
    await Promise.all(workers);
    agent.destroy();

    const records = flows.map((f) => f.record);
    const counts = tally(records);
    console.log('crash under load:', JSON.stringify({ crashes, ...counts }));

    // Every request was answered, never with a 5xx, and the answer was the expected business one.
    expect(records.filter((r) => r.answers.length === 0).map((r) => r.request.key)).toEqual([]);
    // The crashes hit requests in flight: some answers really were lost and retried.
    expect(counts.lostAfterSend).toBeGreaterThan(0);
    const expected: Record<Flow['kind'], number[]> = {
      charge: [201],
      reserve: [201],
      denied: [402],
      capture: [200],
      cancel: [200],
      refund: [201],
    };
    const unexpected = flows
      .filter((f) => !expected[f.kind].includes(final(f).status))
      .map((f) => `${f.kind} ${final(f).status} ${f.record.answers[0]!.text.slice(0, 200)}`);
    expect(unexpected).toEqual([]);

    // Duplicate delivery of every request, now that the gateway is up: the stored answer, byte for byte.
    for (const flow of flows) {
      await sendUntilAnswered(gateway.baseUrl, flow.record.request, { record: flow.record });
    }
    for (const flow of flows) {
      const [first, ...rest] = flow.record.answers;
      for (const again of rest) {
        expect({ key: flow.record.request.key, status: again.status, text: again.text }).toEqual({
          key: flow.record.request.key,
          status: first!.status,
          text: first!.text,
        });
      }
      expect(flow.record.answers.at(-1)!.replayed).toBe(true);
    }

    await assertExactlyOnce(flows.map((f) => ({ ...f, answer: final(f) })));
    expect((await ledgerVerify(gateway.baseUrl, adminKey)).ok).toBe(true);

    // Reservations left alone: once past their expiry (moved into the past, as if the TTL had
    // run out), the restarted gateway's sweeper cancels every one and releases its hold.
    const { rowCount: left } = await db.query(
      `UPDATE charges SET reserved_until = now() - interval '1 second'
        WHERE merchant_id = $1 AND status = 'reserved'`,
      [tenants.merchant.id],
    );
    expect(left).toBeGreaterThan(0);
    await waitUntil(
      'the sweeper cancels expired reservations',
      async () => {
        const { rows } = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM charges
            WHERE merchant_id = $1 AND status IN ('reserved', 'pending_validation')`,
          [tenants.merchant.id],
        );
        return rows[0]!.n === 0;
      },
      20_000,
    );
    const holds = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ledger_holds h JOIN charges c ON c.id = h.id
        WHERE c.merchant_id = $1 AND h.status = 'active'`,
      [tenants.merchant.id],
    );
    expect(holds.rows[0]!.n).toBe(0);
    const expired = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM charges
        WHERE merchant_id = $1 AND status = 'cancelled' AND cancellation_reason = 'expired'`,
      [tenants.merchant.id],
    );
    expect(expired.rows[0]!.n).toBe(left);
    await assertSubscriberBalances();
    expect((await ledgerVerify(gateway.baseUrl, adminKey)).ok).toBe(true);

    gateway.signal('SIGTERM');
    expect((await gateway.exited).code).toBe(0);
  });
});

/** Compares what the clients were told with what the database holds, key by key. */
async function assertExactlyOnce(
  flows: (Flow & { answer: { status: number; body: AnswerBody } })[],
): Promise<void> {
  const merchantId = tenants.merchant.id;

  // One stored outcome per key, holding exactly the bytes the client got.
  const stored = await db.query<{ key: string; response_status: number; response_body: string }>(
    'SELECT key, response_status, response_body FROM idempotency_keys WHERE owner_id = $1',
    [merchantId],
  );
  const byKey = new Map(stored.rows.map((r) => [r.key, r]));
  expect(stored.rows.length).toBe(flows.length);
  for (const f of flows) {
    const row = byKey.get(f.record.request.key);
    expect(row, f.record.request.key).toBeDefined();
    expect(row!.response_status).toBe(f.answer.status);
    expect(row!.response_body).toBe(f.record.answers[0]!.text);
  }

  // One charge per charge request (denials included), the one named in the answer.
  const creates = flows.filter((f) => ['charge', 'reserve', 'denied'].includes(f.kind));
  const charges = await db.query<{
    id: string;
    merchant_reference: string;
    status: string;
    amount: string;
    amount_captured: string;
    amount_refunded: string;
  }>(
    `SELECT id, merchant_reference, status, amount, amount_captured, amount_refunded
       FROM charges WHERE merchant_id = $1`,
    [merchantId],
  );
  expect(charges.rows.length).toBe(creates.length);
  const chargeByRef = new Map(charges.rows.map((c) => [c.merchant_reference, c]));
  expect(chargeByRef.size).toBe(creates.length);
  for (const f of creates) {
    const charge = chargeByRef.get(f.record.request.key)!;
    expect(charge).toBeDefined();
    expect(charge.id).toBe(f.answer.status === 402 ? f.answer.body.charge_id : f.answer.body.id);
  }

  // One refund per refund request; the refunded sum of each charge is the sum of its refunds.
  const refundFlows = flows.filter((f) => f.kind === 'refund');
  const refunds = await db.query<{ id: string; reason: string; charge_id: string; amount: string }>(
    'SELECT id, reason, charge_id, amount FROM refunds WHERE merchant_id = $1',
    [merchantId],
  );
  expect(refunds.rows.length).toBe(refundFlows.length);
  const refundByReason = new Map(refunds.rows.map((r) => [r.reason, r]));
  expect(refundByReason.size).toBe(refundFlows.length);
  for (const f of refundFlows) {
    expect(refundByReason.get(f.record.request.key)?.id).toBe(f.answer.body.id);
  }
  const refundedByCharge = new Map<string, bigint>();
  for (const r of refunds.rows) {
    refundedByCharge.set(r.charge_id, (refundedByCharge.get(r.charge_id) ?? 0n) + BigInt(r.amount));
  }
  for (const c of charges.rows) {
    expect(BigInt(c.amount_refunded)).toBe(refundedByCharge.get(c.id) ?? 0n);
  }

  // Captures took what was asked, once.
  for (const f of flows.filter((x) => x.kind === 'capture')) {
    const charge = chargeByRef.get(f.chargeKey!)!;
    expect(charge.status).toBe('succeeded');
    expect(Number(charge.amount_captured)).toBe(f.amount);
  }

  // The books moved once per effect: one capture journal per succeeded charge, one per refund.
  const journals = await db.query<{ kind: string; reference_id: string; n: number }>(
    `SELECT j.kind, j.reference_id, count(*)::int AS n FROM journal_transactions j
      WHERE j.reference_id IN (SELECT id FROM charges WHERE merchant_id = $1
                               UNION ALL SELECT id FROM refunds WHERE merchant_id = $1)
      GROUP BY j.kind, j.reference_id`,
    [merchantId],
  );
  expect(journals.rows.filter((j) => j.n !== 1)).toEqual([]);
  const captureJournals = new Set(
    journals.rows.filter((j) => j.kind === 'capture').map((j) => j.reference_id),
  );
  const succeeded = charges.rows.filter((c) => c.status === 'succeeded').map((c) => c.id);
  expect(captureJournals.size).toBe(succeeded.length);
  for (const id of succeeded) expect(captureJournals.has(id)).toBe(true);
  expect(journals.rows.filter((j) => j.kind === 'refund').length).toBe(refundFlows.length);

  // Each event of the outbox was written once.
  const duplicates = await db.query(
    `SELECT subject_id, type, count(*) FROM events WHERE merchant_id = $1
      GROUP BY subject_id, type HAVING count(*) > 1`,
    [merchantId],
  );
  expect(duplicates.rows).toEqual([]);
}

/** Each subscriber's balance is its top-up less what was captured plus what was refunded. */
async function assertSubscriberBalances(): Promise<void> {
  const { rows } = await db.query<{
    msisdn: string;
    posted: string;
    pending: string;
    captured: string;
    refunded: string;
  }>(
    `SELECT s.msisdn, a.posted::text, a.pending::text,
            coalesce(sum(c.amount_captured), 0)::text AS captured,
            coalesce(sum(c.amount_refunded), 0)::text AS refunded
       FROM subscribers s JOIN ledger_accounts a ON a.id = s.account_id
       LEFT JOIN charges c ON c.subscriber_id = s.id
      WHERE s.carrier_id = $1
      GROUP BY s.msisdn, a.posted, a.pending`,
    [tenants.carrier.id],
  );
  expect(rows.length).toBe(tenants.msisdns.length + 1);
  for (const r of rows) {
    const toppedUp = r.msisdn === poorMsisdn ? 0n : BigInt(BALANCE);
    expect({ msisdn: r.msisdn, posted: r.posted, pending: r.pending }).toEqual({
      msisdn: r.msisdn,
      posted: String(toppedUp - BigInt(r.captured) + BigInt(r.refunded)),
      pending: '0',
    });
  }
}
