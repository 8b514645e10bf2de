import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createHarness, type Harness } from './helpers/harness.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  randomMsisdn,
  subscriberBalance,
} from './helpers/factories.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

function topup(
  key: string,
  msisdn: string,
  amount: string,
  idem = `t-${Math.random()}`,
  currency = 'VND',
) {
  return h.http
    .post(`/v1/carrier/subscribers/${msisdn}/topups`)
    .set(bearer(key))
    .set('Idempotency-Key', idem)
    .send({ amount, currency, reference: `ref-${idem}` });
}

describe('carrier subscribers', () => {
  it('creates (201) then updates (200) a subscriber and shows balance, held, available and spend', async () => {
    const carrier = await newCarrier(h);
    const msisdn = randomMsisdn();
    const created = await h.http
      .put(`/v1/carrier/subscribers/${msisdn}`)
      .set(bearer(carrier.key))
      .send({ funding_type: 'prepaid', status: 'active' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      msisdn,
      carrier: carrier.id,
      funding_type: 'prepaid',
      status: 'active',
      currency: 'VND',
      balance: { posted: '0', held: '0', available: '0' },
    });
    const updated = await h.http
      .put(`/v1/carrier/subscribers/${msisdn}`)
      .set(bearer(carrier.key))
      .send({ funding_type: 'postpaid', status: 'active', credit_limit: '50000' });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ funding_type: 'postpaid', credit_limit: '50000' });
    const merchant = await newMerchant(h);
    expect((await charge(h, merchant, { msisdn, amount: '8000' })).status).toBe(201);
    expect((await charge(h, merchant, { msisdn, amount: '2000', capture: false })).status).toBe(
      201,
    );
    const got = await h.http.get(`/v1/carrier/subscribers/${msisdn}`).set(bearer(carrier.key));
    expect(got.body.balance).toEqual({ posted: '-8000', held: '2000', available: '-10000' });
    expect(got.body.spent).toEqual({ today: '10000', this_month: '10000' });
  });

  it('top-ups are idempotent: a retry with the same key credits once', async () => {
    const carrier = await newCarrier(h);
    const sub = await newSubscriber(h, carrier);
    const first = await topup(carrier.key, sub.msisdn, '25000', 'same-topup');
    expect(first.status).toBe(201);
    expect(first.body.balance.available).toBe('25000');
    const again = await topup(carrier.key, sub.msisdn, '25000', 'same-topup');
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.text).toBe(first.text);
    expect((await subscriberBalance(h, sub)).available).toBe('25000');
  });

  it('refuses top-ups of postpaid accounts, in another currency, or of unknown subscribers', async () => {
    const carrier = await newCarrier(h);
    const post = await newSubscriber(h, carrier, {
      funding_type: 'postpaid',
      credit_limit: '1000',
    });
    const res = await topup(carrier.key, post.msisdn, '1000');
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('invalid_state');
    const pre = await newSubscriber(h, carrier);
    const usd = await topup(carrier.key, pre.msisdn, '10.00', undefined, 'USD');
    expect(usd.status).toBe(422);
    expect(usd.body.code).toBe('currency_mismatch');
    const ghost = await topup(carrier.key, '+84911111119', '1000');
    expect(ghost.status).toBe(404);
    const badMsisdn = await h.http
      .put('/v1/carrier/subscribers/0901234567')
      .set(bearer(carrier.key))
      .send({ funding_type: 'prepaid', status: 'active' });
    expect(badMsisdn.status).toBe(400);
  });

  it('barred and suspended subscribers are denied with a recorded charge', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const barred = await newSubscriber(h, carrier, { balance: '10000' });
    await h.http
      .put(`/v1/carrier/subscribers/${barred.msisdn}`)
      .set(bearer(carrier.key))
      .send({ funding_type: 'prepaid', status: 'barred' });
    const denied = await charge(h, merchant, { msisdn: barred.msisdn, amount: '1000' });
    expect(denied.status).toBe(402);
    expect(denied.body.code).toBe('subscriber_barred');
    const recorded = await h.http
      .get(`/v1/charges/${denied.body.charge_id}`)
      .set(bearer(merchant.key));
    expect(recorded.body).toMatchObject({ status: 'denied', denial_code: 'subscriber_barred' });
    const suspended = await newSubscriber(h, carrier, { balance: '10000', status: 'suspended' });
    const denied2 = await charge(h, merchant, { msisdn: suspended.msisdn, amount: '1000' });
    expect(denied2.body.code).toBe('subscriber_suspended');
    expect((await subscriberBalance(h, barred)).available).toBe('10000');
  });
});
