import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  subscriberBalance,
  verifyLedger,
  type SubscriberFixture,
} from './helpers/factories.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ env: { PG_POOL_MAX: '40', RATE_LIMIT_MSISDN_PER_MINUTE: '100000' } });
});
afterAll(() => h.close());

const CAP = '10000000';

function prepaidLimits(limits: Record<string, string | null>) {
  return {
    limits: {
      prepaid: { per_transaction_max: '1000000', daily_max: null, monthly_max: null, ...limits },
    },
  };
}

async function spent(sub: SubscriberFixture): Promise<{ today: string; this_month: string }> {
  const res = await h.http
    .get(`/v1/carrier/subscribers/${sub.msisdn}`)
    .set(bearer(sub.carrier.key));
  return res.body.spent;
}

describe('spend limits', () => {
  for (const [cap, code] of [
    ['monthly_max', 'limit_monthly_exceeded'],
    ['daily_max', 'limit_daily_exceeded'],
  ] as const) {
    it(`30 concurrent 500,000 charges against a ${cap} of 10,000,000: exactly 20 succeed, 10 are ${code}`, async () => {
      const carrier = await newCarrier(h, prepaidLimits({ [cap]: CAP }));
      const merchant = await newMerchant(h);
      const sub = await newSubscriber(h, carrier, { balance: '30000000' });
      const answers = await Promise.all(
        Array.from({ length: 30 }, () =>
          charge(h, merchant, { msisdn: sub.msisdn, amount: '500000' }),
        ),
      );
      expect(answers.filter((a) => a.status === 201)).toHaveLength(20);
      const denied = answers.filter((a) => a.status === 402);
      expect(denied).toHaveLength(10);
      for (const d of denied) {
        expect(d.body).toMatchObject({ code, denial_code: code });
        expect(d.body.charge_id).toMatch(/^ch_/);
      }
      expect(await subscriberBalance(h, sub)).toEqual({
        posted: '20000000',
        held: '0',
        available: '20000000',
      });
      expect(await spent(sub)).toEqual({ today: CAP, this_month: CAP });
      const { rows } = await h.c.pool.query<{ status: string; denial_code: string | null }>(
        `SELECT status, denial_code FROM charges WHERE merchant_id = $1 AND status = 'denied'`,
        [merchant.id],
      );
      expect(rows).toHaveLength(10);
      for (const r of rows) expect(r.denial_code).toBe(code);
    });
  }

  it('a refund frees cap room; reservations and charges awaiting a code use it up', async () => {
    const carrier = await newCarrier(h, prepaidLimits({ monthly_max: '1000000' }));
    const merchant = await newMerchant(h);
    const asksForCodes = await newMerchant(h, { consent: 'always_otp' });
    const sub = await newSubscriber(h, carrier, { balance: '5000000' });
    const paid = await charge(h, merchant, { msisdn: sub.msisdn, amount: '500000' });
    expect(paid.status).toBe(201);
    const reserved = await charge(h, merchant, {
      msisdn: sub.msisdn,
      amount: '200000',
      capture: false,
    });
    expect(reserved.body.status).toBe('reserved');
    const pending = await charge(h, asksForCodes, { msisdn: sub.msisdn, amount: '300000' });
    expect(pending.body.status).toBe('pending_validation');
    expect(await spent(sub)).toMatchObject({ this_month: '1000000' });

    const over = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1' });
    expect(over.status).toBe(402);
    expect(over.body.code).toBe('limit_monthly_exceeded');

    const refund = await h.http
      .post(`/v1/charges/${paid.body.id}/refunds`)
      .set(bearer(merchant.key))
      .set('Idempotency-Key', `r-${randomSuffix()}`)
      .send({ amount: '150000' });
    expect(refund.status, JSON.stringify(refund.body)).toBe(201);
    expect(await spent(sub)).toMatchObject({ this_month: '850000' });
    expect((await charge(h, merchant, { msisdn: sub.msisdn, amount: '150000' })).status).toBe(201);
    expect((await charge(h, merchant, { msisdn: sub.msisdn, amount: '1' })).status).toBe(402);

    const cancel = await h.http
      .post(`/v1/charges/${reserved.body.id}/cancel`)
      .set(bearer(merchant.key))
      .set('Idempotency-Key', `c-${randomSuffix()}`);
    expect(cancel.status).toBe(200);
    expect((await charge(h, merchant, { msisdn: sub.msisdn, amount: '200000' })).status).toBe(201);
    expect(await spent(sub)).toMatchObject({ this_month: '1000000' });
  });

  it('the carrier’s per-transaction max for the funding type, VND defaults included', async () => {
    const carrier = await newCarrier(h);
    expect(carrier.body.limits).toEqual({
      prepaid: { per_transaction_max: '5000000', daily_max: null, monthly_max: '10000000' },
      postpaid: { per_transaction_max: '500000', daily_max: null, monthly_max: null },
    });
    const merchant = await newMerchant(h);
    const prepaid = await newSubscriber(h, carrier, { balance: '12000000' });
    const tooMuch = await charge(h, merchant, { msisdn: prepaid.msisdn, amount: '5000001' });
    expect(tooMuch.status).toBe(402);
    expect(tooMuch.body.code).toBe('limit_per_transaction_exceeded');
    expect((await charge(h, merchant, { msisdn: prepaid.msisdn, amount: '5000000' })).status).toBe(
      201,
    );
    expect((await charge(h, merchant, { msisdn: prepaid.msisdn, amount: '5000000' })).status).toBe(
      201,
    );
    const monthly = await charge(h, merchant, { msisdn: prepaid.msisdn, amount: '1' });
    expect(monthly.body.code).toBe('limit_monthly_exceeded');

    const postpaid = await newSubscriber(h, carrier, {
      funding_type: 'postpaid',
      credit_limit: '2000000',
    });
    const overPostpaid = await charge(h, merchant, { msisdn: postpaid.msisdn, amount: '500001' });
    expect(overPostpaid.body.code).toBe('limit_per_transaction_exceeded');
    expect((await charge(h, merchant, { msisdn: postpaid.msisdn, amount: '500000' })).status).toBe(
      201,
    );
    expect(await subscriberBalance(h, prepaid)).toMatchObject({ posted: '2000000' });
  });

  it('the merchant’s own per-transaction max applies in its currency', async () => {
    const carrier = await newCarrier(h);
    const capped = await newMerchant(h, {
      per_transaction_max: { amount: '20000', currency: 'VND' },
    });
    const inDollars = await newMerchant(h, {
      per_transaction_max: { amount: '1.00', currency: 'USD' },
    });
    const sub = await newSubscriber(h, carrier, { balance: '1000000' });
    const over = await charge(h, capped, { msisdn: sub.msisdn, amount: '20001' });
    expect(over.status).toBe(402);
    expect(over.body.denial_code).toBe('limit_per_transaction_exceeded');
    expect((await charge(h, capped, { msisdn: sub.msisdn, amount: '20000' })).status).toBe(201);
    expect((await charge(h, inDollars, { msisdn: sub.msisdn, amount: '50000' })).status).toBe(201);
  });

  it('a charge is checked against the limits before the consent code is sent', async () => {
    const carrier = await newCarrier(h, {
      ...prepaidLimits({ daily_max: '100000' }),
      otp_threshold: '50000',
    });
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '1000000' });
    const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '100001' });
    expect(res.status).toBe(402);
    expect(res.body.code).toBe('limit_daily_exceeded');
    const { rows } = await h.c.pool.query('SELECT 1 FROM sms_outbox WHERE msisdn = $1', [
      sub.msisdn,
    ]);
    expect(rows).toHaveLength(0);
  });

  it('barred and suspended subscribers are denied before any limit is counted', async () => {
    const carrier = await newCarrier(h, prepaidLimits({ daily_max: '1000' }));
    const merchant = await newMerchant(h);
    for (const status of ['barred', 'suspended'] as const) {
      const sub = await newSubscriber(h, carrier, { balance: '10000', status });
      const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' });
      expect(res.status).toBe(402);
      expect(res.body.code).toBe(`subscriber_${status}`);
    }
  });

  it('leaves the books balanced', async () => {
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});
