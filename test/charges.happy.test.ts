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
  h = await createHarness();
});
afterAll(() => h.close());

/** A merchant's reservation of `amount` on a new subscriber holding 50,000 VND. */
async function reservation(amount: string) {
  const carrier = await newCarrier(h);
  const merchant = await newMerchant(h);
  const sub = await newSubscriber(h, carrier, { balance: '50000' });
  const reserved = await charge(h, merchant, { msisdn: sub.msisdn, amount, capture: false });
  return { merchant, sub, reserved };
}

function post(path: string, key: string, body?: object) {
  const req = h.http.post(path).set(bearer(key)).set('Idempotency-Key', `k-${Math.random()}`);
  return body ? req.send(body) : req;
}

describe('charges: the happy paths', () => {
  it('a one-step charge succeeds, moves the money and records the split', async () => {
    const carrier = await newCarrier(h, { revenue_share_bps: 3000 });
    const merchant = await newMerchant(h, { fee_bps: 250 });
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const res = await charge(h, merchant, {
      msisdn: sub.msisdn,
      amount: '15000',
      merchant_reference: 'order-1',
      metadata: { sku: 'gem-pack' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      status: 'succeeded',
      amount: '15000',
      amount_captured: '15000',
      amount_refunded: '0',
      currency: 'VND',
      carrier: carrier.code,
      merchant_reference: 'order-1',
      metadata: { sku: 'gem-pack' },
      split: { carrier_share: '4500', gateway_fee: '375', merchant_net: '10125' },
    });
    expect(res.body.msisdn).toBe(`${sub.msisdn.slice(0, 5)}****${sub.msisdn.slice(-3)}`);
    expect(res.body.id).toMatch(/^ch_/);
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '85000',
      held: '0',
      available: '85000',
    });
    const balance = await h.http.get('/v1/balance').set(bearer(merchant.key));
    expect(balance.body.balances).toEqual([
      { currency: 'VND', pending_settlement: '10125', settled: '0' },
    ]);
    const got = await h.http.get(`/v1/charges/${res.body.id}`).set(bearer(merchant.key));
    expect(got.body).toEqual(res.body);
  });

  it('reserve → partial capture takes part and releases the rest', async () => {
    const { merchant, sub, reserved } = await reservation('20000');
    expect(reserved.status).toBe(201);
    expect(reserved.body.status).toBe('reserved');
    expect(reserved.body.split).toBeNull();
    expect(new Date(reserved.body.reserved_until).getTime()).toBeGreaterThan(
      Date.now() + 6 * 24 * 3600 * 1000,
    );
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '50000',
      held: '20000',
      available: '30000',
    });

    const captured = await post(`/v1/charges/${reserved.body.id}/capture`, merchant.key, {
      amount: '12000',
    });
    expect(captured.status, JSON.stringify(captured.body)).toBe(200);
    expect(captured.body).toMatchObject({
      status: 'succeeded',
      amount: '20000',
      amount_captured: '12000',
    });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '38000',
      held: '0',
      available: '38000',
    });
  });

  it('capture may not take more than was reserved', async () => {
    const { merchant, sub, reserved } = await reservation('20000');
    const over = await post(`/v1/charges/${reserved.body.id}/capture`, merchant.key, {
      amount: '20001',
    });
    expect(over.status).toBe(400);
    expect(over.body.code).toBe('invalid_amount');
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '50000',
      held: '20000',
      available: '30000',
    });
  });

  it('reserve → cancel releases the hold; capture after cancel is 409 invalid_state', async () => {
    const { merchant, sub, reserved } = await reservation('20000');
    const cancelled = await post(`/v1/charges/${reserved.body.id}/cancel`, merchant.key);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({
      status: 'cancelled',
      cancellation_reason: 'requested_by_merchant',
    });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '50000',
      held: '0',
      available: '50000',
    });
    const capture = await post(`/v1/charges/${reserved.body.id}/capture`, merchant.key);
    expect(capture.status).toBe(409);
    expect(capture.body).toMatchObject({ code: 'invalid_state', current_status: 'cancelled' });
    const cancelSucceeded = await post(
      `/v1/charges/${(await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' })).body.id}/cancel`,
      merchant.key,
    );
    expect(cancelSucceeded.status).toBe(409);
    expect(cancelSucceeded.body.current_status).toBe('succeeded');
  });

  it('reserve → expiry: the sweeper cancels it with reason expired, by database time', async () => {
    const { merchant, sub, reserved } = await reservation('7000');
    await h.c.pool.query(
      `UPDATE charges SET reserved_until = now() - interval '1 second' WHERE id = $1`,
      [reserved.body.id],
    );
    const capture = await post(`/v1/charges/${reserved.body.id}/capture`, merchant.key);
    expect(capture.status).toBe(409);
    let swept = 0;
    for (let i = 0; i < 10 && swept === 0; i++) {
      await h.c.charges.expiryWorker().runOnce();
      const got = await h.http.get(`/v1/charges/${reserved.body.id}`).set(bearer(merchant.key));
      if (got.body.status === 'cancelled') {
        swept = 1;
        expect(got.body.cancellation_reason).toBe('expired');
      }
    }
    expect(swept).toBe(1);
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '50000',
      held: '0',
      available: '50000',
    });
  });

  it('a postpaid subscriber is charged up to the credit limit, then denied credit_limit_exceeded', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, {
      funding_type: 'postpaid',
      credit_limit: '30000',
    });
    expect((await charge(h, merchant, { msisdn: sub.msisdn, amount: '20000' })).status).toBe(201);
    const denied = await charge(h, merchant, { msisdn: sub.msisdn, amount: '10001' });
    expect(denied.status).toBe(402);
    expect(denied.body).toMatchObject({
      code: 'credit_limit_exceeded',
      denial_code: 'credit_limit_exceeded',
    });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '-20000',
      held: '0',
      available: '-20000',
    });
  });

  it('lists the merchant’s charges newest first with filters and cursor pagination', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await charge(h, merchant, { msisdn: sub.msisdn, amount: `${1000 + i}` })).body.id);
    ids.push(
      (await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000', capture: false })).body.id,
    );
    const page1 = await h.http.get('/v1/charges?limit=4').set(bearer(merchant.key));
    expect(page1.body.has_more).toBe(true);
    const page2 = await h.http
      .get(`/v1/charges?limit=4&starting_after=${page1.body.data.at(-1).id}`)
      .set(bearer(merchant.key));
    expect(page2.body.has_more).toBe(false);
    expect([...page1.body.data, ...page2.body.data].map((c: { id: string }) => c.id)).toEqual(
      [...ids].reverse(),
    );
    const reserved = await h.http.get('/v1/charges?status=reserved').set(bearer(merchant.key));
    expect(reserved.body.data.map((c: { id: string }) => c.id)).toEqual([ids[5]]);
    const other = await newSubscriber(h, carrier, { balance: '100000' });
    const otherCharge = (await charge(h, merchant, { msisdn: other.msisdn, amount: '1000' })).body
      .id;
    const byMsisdn = await h.http
      .get(`/v1/charges?msisdn=${encodeURIComponent(sub.msisdn)}&limit=100`)
      .set(bearer(merchant.key));
    expect(byMsisdn.body.data.map((c: { id: string }) => c.id)).toEqual([...ids].reverse());
    const oldest = await h.http
      .get(`/v1/charges?starting_after=${ids[0]}`)
      .set(bearer(merchant.key));
    expect(oldest.body).toEqual({ data: [], has_more: false });

    // A cursor must be one of the merchant's own charges.
    const stranger = await newMerchant(h);
    for (const cursor of [otherCharge, 'ch_01jzzzzzzzzzzzzzzzzzzzzzzz']) {
      const res = await h.http
        .get(`/v1/charges?starting_after=${cursor}`)
        .set(bearer(stranger.key));
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'invalid_cursor', param: 'starting_after' });
    }
    const future = await h.http
      .get(
        `/v1/charges?created_gte=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`,
      )
      .set(bearer(merchant.key));
    expect(future.body.data).toHaveLength(0);
  });

  it('moves amounts beyond 32-bit integers exactly (minor units are BIGINT end to end)', async () => {
    const carrier = await newCarrier(h, {
      limits: { prepaid: { per_transaction_max: '900000000000', monthly_max: null } },
    });
    const merchant = await newMerchant(h, { fee_bps: 250 });
    const sub = await newSubscriber(h, carrier, { balance: '10000000000' });
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '4294967297' });
    expect(res.status, res.text).toBe(201);
    expect(res.body.split).toEqual({
      carrier_share: '1288490189',
      gateway_fee: '107374182',
      merchant_net: '2899102926',
    });
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '5705032703',
      held: '0',
      available: '5705032703',
    });
  });

  it('leaves the books balanced', async () => {
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});
