import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bearer, createHarness, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  subscriberBalance,
  verifyLedger,
  type CarrierFixture,
} from './helpers/factories.js';

/**
 * A one-step charge (captured at once, no consent code) on a carrier without daily or monthly
 * caps runs as one statement, execute_one_step_charge, outside any explicit transaction. These
 * tests hold that path to the same promises as the transactional one.
 */
let h: Harness;
beforeAll(async () => {
  h = await createHarness({ env: { PG_POOL_MAX: '40' } });
});
afterAll(() => h.close());

const UNCAPPED = {
  limits: {
    prepaid: { per_transaction_max: '50000', daily_max: null, monthly_max: null },
    postpaid: { per_transaction_max: '50000', daily_max: null, monthly_max: null },
  },
};

function uncappedCarrier(): Promise<CarrierFixture> {
  return newCarrier(h, UNCAPPED);
}

async function chargeRows(merchantId: string): Promise<{ status: string; n: number }[]> {
  const { rows } = await h.c.pool.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM charges WHERE merchant_id = $1 GROUP BY status ORDER BY status',
    [merchantId],
  );
  return rows;
}

describe('one-step charges on a carrier without spend caps', () => {
  it('are one statement without BEGIN, and record the charge whole: entries, audit event, merchant event, stored answer', async () => {
    const carrier = await uncappedCarrier();
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '20000' });
    // Every statement of every connection (the harness runs no workers).
    const query = vi.spyOn(pg.Client.prototype, 'query');
    let res;
    try {
      res = await charge(h, merchant, {
        msisdn: sub.msisdn,
        amount: '10000',
        merchant_reference: 'order-1',
        metadata: { sku: 'x' },
      });
      const texts = query.mock.calls.map(([text]) =>
        typeof text === 'string' ? text : (text as { text: string }).text,
      );
      expect(texts.filter((t) => t.includes('execute_one_step_charge'))).toHaveLength(1);
      expect(texts.filter((t) => /^\s*(BEGIN|COMMIT|SAVEPOINT)/i.test(t))).toEqual([]);
    } finally {
      query.mockRestore();
    }
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      status: 'succeeded',
      amount: '10000',
      amount_captured: '10000',
      merchant_reference: 'order-1',
      metadata: { sku: 'x' },
      split: { carrier_share: '3000', gateway_fee: '250', merchant_net: '6750' },
    });
    const id = res.body.id as string;

    const read = await h.http.get(`/v1/charges/${id}`).set(bearer(merchant.key));
    expect(read.text).toBe(res.text);
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '10000',
      held: '0',
      available: '10000',
    });
    const entries = await h.c.pool.query<{ amount: string }>(
      `SELECT e.amount FROM journal_entries e JOIN journal_transactions t ON t.id = e.transaction_id
        WHERE t.reference_id = $1 AND t.kind = 'capture' ORDER BY e.amount`,
      [id],
    );
    expect(entries.rows.map((r) => r.amount)).toEqual(['-10000', '250', '3000', '6750']);
    const audit = await h.c.pool.query(
      'SELECT action, actor_type, actor_id, request_id, summary FROM audit_events WHERE object_id = $1',
      [id],
    );
    expect(audit.rows).toEqual([
      {
        action: 'charge.succeeded',
        actor_type: 'merchant',
        actor_id: merchant.id,
        request_id: res.headers['request-id'],
        summary: {
          status: 'succeeded',
          amount: '10000',
          currency: 'VND',
          msisdn: res.body.msisdn,
        },
      },
    ]);
    const events = await h.http.get('/v1/events').set(bearer(merchant.key));
    expect(events.body.data).toHaveLength(1);
    expect(events.body.data[0]).toMatchObject({ type: 'charge.succeeded', data: res.body });
    const stored = await h.c.pool.query(
      'SELECT response_status, response_body FROM idempotency_keys WHERE owner_id = $1',
      [merchant.id],
    );
    expect(stored.rows).toEqual([{ response_status: 201, response_body: res.text }]);
  });

  it('100 concurrent identical requests with one key move money once; every answer is the one 201 body or 409 in progress', async () => {
    const carrier = await uncappedCarrier();
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const key = `same-${Math.random()}`;
    const answers = await Promise.all(
      Array.from({ length: 100 }, () =>
        charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key),
      ),
    );
    const created = answers.filter((a) => a.status === 201);
    const inProgress = answers.filter((a) => a.status === 409);
    expect(created.length + inProgress.length).toBe(100);
    expect(new Set(created.map((a) => a.text)).size).toBe(1);
    for (const a of inProgress) {
      expect(a.body.code).toBe('idempotency_request_in_progress');
      expect(a.headers['retry-after']).toBe('1');
    }
    expect(await chargeRows(merchant.id)).toEqual([{ status: 'succeeded', n: 1 }]);
    expect(await subscriberBalance(h, sub)).toMatchObject({ posted: '95000' });
    const replay = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    if (created[0]) expect(replay.text).toBe(created[0].text);
  });

  it('40 concurrent 5,000 charges against 100,000: exactly 20 succeed; 20 are recorded denials, each replayed byte for byte', async () => {
    const carrier = await uncappedCarrier();
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const keys = Array.from({ length: 40 }, (_, i) => `race-${i}-${Math.random()}`);
    const answers = await Promise.all(
      keys.map((key) => charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key)),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(20);
    expect(answers.filter((a) => a.status === 402)).toHaveLength(20);
    expect(await subscriberBalance(h, sub)).toEqual({ posted: '0', held: '0', available: '0' });
    expect(await chargeRows(merchant.id)).toEqual([
      { status: 'denied', n: 20 },
      { status: 'succeeded', n: 20 },
    ]);
    for (const [i, answer] of answers.entries()) {
      if (answer.status !== 402) continue;
      expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(answer.body).toMatchObject({
        code: 'insufficient_funds',
        denial_code: 'insufficient_funds',
      });
      const denied = await h.http
        .get(`/v1/charges/${answer.body.charge_id as string}`)
        .set(bearer(merchant.key));
      expect(denied.body).toMatchObject({ status: 'denied', denial_code: 'insufficient_funds' });
      const replay = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, keys[i]);
      expect(replay.status).toBe(402);
      expect(replay.text).toBe(answer.text);
      expect(replay.headers['idempotent-replayed']).toBe('true');
    }
  });

  it('denials that do not depend on the balance are recorded without moving money: barred, suspended, over the per-transaction cap, past the credit limit', async () => {
    const carrier = await uncappedCarrier();
    const merchant = await newMerchant(h);
    const barred = await newSubscriber(h, carrier, { balance: '10000', status: 'barred' });
    const suspended = await newSubscriber(h, carrier, { balance: '10000', status: 'suspended' });
    const rich = await newSubscriber(h, carrier, { balance: '100000' });
    const postpaid = await newSubscriber(h, carrier, {
      funding_type: 'postpaid',
      credit_limit: '3000',
    });
    const cases = [
      [barred, '1000', 'subscriber_barred'],
      [suspended, '1000', 'subscriber_suspended'],
      [rich, '60000', 'limit_per_transaction_exceeded'],
      [postpaid, '4000', 'credit_limit_exceeded'],
    ] as const;
    for (const [sub, amount, code] of cases) {
      const res = await charge(h, merchant, { msisdn: sub.msisdn, amount });
      expect(res.status, code).toBe(402);
      expect(res.body).toMatchObject({ code, denial_code: code });
    }
    expect(await chargeRows(merchant.id)).toEqual([{ status: 'denied', n: 4 }]);
    expect(await subscriberBalance(h, barred)).toMatchObject({ posted: '10000' });
    expect(await subscriberBalance(h, rich)).toMatchObject({ posted: '100000' });
    const ok = await charge(h, merchant, { msisdn: postpaid.msisdn, amount: '3000' });
    expect(ok.status).toBe(201);
    expect(await subscriberBalance(h, postpaid)).toMatchObject({ posted: '-3000' });
  });

  it('the same key with a different request is 422 and nothing runs', async () => {
    const carrier = await uncappedCarrier();
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const key = `reuse-${Math.random()}`;
    expect((await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' }, key)).status).toBe(
      201,
    );
    const other = await charge(h, merchant, { msisdn: sub.msisdn, amount: '2000' }, key);
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('idempotency_key_reused');
    expect(await subscriberBalance(h, sub)).toMatchObject({ posted: '9000' });
  });

  it('leaves the books balanced', async () => {
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});

describe('one-step charges on a carrier with spend caps', () => {
  it('count the caps inside the one statement: a charge past the monthly cap is a recorded denial, still without BEGIN', async () => {
    const carrier = await newCarrier(h, {
      limits: {
        prepaid: { per_transaction_max: '1000000', daily_max: '15000', monthly_max: '10000' },
      },
    });
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const secondKey = `k-capped-${Date.now()}`;
    const query = vi.spyOn(pg.Client.prototype, 'query');
    let first;
    let second;
    try {
      first = await charge(h, merchant, { msisdn: sub.msisdn, amount: '6000' });
      second = await charge(h, merchant, { msisdn: sub.msisdn, amount: '6000' }, secondKey);
      const texts = query.mock.calls.map(([text]) =>
        typeof text === 'string' ? text : (text as { text: string }).text,
      );
      // One statement for the success; two for the denial (refused, then recorded).
      expect(texts.filter((t) => t.includes('execute_one_step_charge'))).toHaveLength(3);
      expect(texts.filter((t) => /^\s*(BEGIN|COMMIT|SAVEPOINT)/i.test(t))).toEqual([]);
    } finally {
      query.mockRestore();
    }
    expect(first.status, first.text).toBe(201);
    expect(second.status, second.text).toBe(402);
    expect(second.body).toMatchObject({
      code: 'limit_monthly_exceeded',
      denial_code: 'limit_monthly_exceeded',
    });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '94000',
      held: '0',
      available: '94000',
    });
    const replay = await charge(h, merchant, { msisdn: sub.msisdn, amount: '6000' }, secondKey);
    expect(replay.status).toBe(402);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(await chargeRows(merchant.id)).toEqual([
      { status: 'denied', n: 1 },
      { status: 'succeeded', n: 1 },
    ]);
  });
});

describe('one-step charges and settlement', () => {
  it('refuse a charge stamped longer than the tolerance before its statement began: 503, nothing written, the retry succeeds', async () => {
    const carrier = await uncappedCarrier();
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '20000' });
    const key = `k-stale-${Date.now()}`;
    // The gateway's clock 60 s behind the database's: every stamp looks 60 s old to the statement.
    vi.useFakeTimers({ toFake: ['Date'] });
    let stale;
    try {
      vi.setSystemTime(Date.now() - 60_000);
      stale = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key);
    } finally {
      vi.useRealTimers();
    }
    expect(stale.status, stale.text).toBe(503);
    expect(stale.body).toMatchObject({ code: 'service_unavailable' });
    expect(stale.headers['retry-after']).toBe('1');
    expect(await chargeRows(merchant.id)).toEqual([]);
    expect(await subscriberBalance(h, sub)).toMatchObject({ posted: '20000' });

    const retry = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    expect(await subscriberBalance(h, sub)).toMatchObject({ posted: '15000' });
  });
});
