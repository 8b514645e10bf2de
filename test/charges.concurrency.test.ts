import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createHarness, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  subscriberBalance,
  verifyLedger,
} from './helpers/factories.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ env: { PG_POOL_MAX: '40' } });
});
afterAll(() => h.close());

describe('charges under concurrency', () => {
  it('40 concurrent 5,000 charges against 100,000: exactly 20 succeed, 20 denied, never below zero', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' })),
    );
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(20);
    const denied = answers.filter((a) => a.status === 402);
    expect(denied).toHaveLength(20);
    for (const d of denied) expect(d.body.code).toBe('insufficient_funds');
    expect(await subscriberBalance(h, sub)).toEqual({ posted: '0', held: '0', available: '0' });
    const { rows } = await h.c.pool.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM charges WHERE merchant_id = $1 GROUP BY status ORDER BY status',
      [merchant.id],
    );
    expect(rows).toEqual([
      { status: 'denied', n: 20 },
      { status: 'succeeded', n: 20 },
    ]);
  });

  it('a hot merchant: 50 concurrent charges from 50 subscribers all succeed, nothing lost', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h, { fee_bps: 250 });
    const subs = await Promise.all(
      Array.from({ length: 50 }, () => newSubscriber(h, carrier, { balance: '20000' })),
    );
    const answers = await Promise.all(
      subs.map((s) => charge(h, merchant, { msisdn: s.msisdn, amount: '10000' })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(201));
    // 10,000 at 30% carrier share and 2.5% fee leaves 6,750 for the merchant each time.
    const before = await h.http.get('/v1/balance').set(bearer(merchant.key));
    expect(before.body.balances).toEqual([
      { currency: 'VND', pending_settlement: String(50 * 6750), settled: '0' },
    ]);
    while ((await h.c.ledger.rollUp()) > 0) {
      /* fold every delta */
    }
    const after = await h.http.get('/v1/balance').set(bearer(merchant.key));
    expect(after.body).toEqual(before.body);
    const { rows } = await h.c.pool.query<{ posted: string }>(
      `SELECT posted::text FROM ledger_accounts WHERE kind = 'merchant_payable' AND owner_id = $1`,
      [merchant.id],
    );
    expect(rows[0]!.posted).toBe(String(50 * 6750));
    expect((await verifyLedger(h)).ok).toBe(true);
  });

  it('concurrent reservations and captures on one subscriber never overdraw it', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '30000' });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        charge(h, merchant, { msisdn: sub.msisdn, amount: '5000', capture: false }),
      ),
    );
    const reserved = answers.filter((a) => a.status === 201);
    expect(reserved).toHaveLength(6);
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '30000',
      held: '30000',
      available: '0',
    });
    const captures = await Promise.all(
      reserved.map((r) =>
        h.http
          .post(`/v1/charges/${r.body.id}/capture`)
          .set(bearer(merchant.key))
          .set('Idempotency-Key', `c-${r.body.id}`)
          .send({ amount: '4000' }),
      ),
    );
    expect(captures.map((c) => c.status)).toEqual(Array(6).fill(200));
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '6000',
      held: '0',
      available: '6000',
    });
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});
