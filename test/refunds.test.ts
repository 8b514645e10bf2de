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

function refund(
  merchantKey: string,
  chargeId: string,
  body: Record<string, unknown> = {},
  key = `r-${Math.random()}`,
) {
  return h.http
    .post(`/v1/charges/${chargeId}/refunds`)
    .set(bearer(merchantKey))
    .set('Idempotency-Key', key)
    .send(body);
}

async function accountTotalsFor(chargeId: string) {
  // Net effect of the charge and its refunds on every account, from the journal alone.
  const { rows } = await h.c.pool.query<{ account_id: string; net: string }>(
    `SELECT e.account_id, sum(e.amount)::text AS net
       FROM journal_entries e JOIN journal_transactions t ON t.id = e.transaction_id
      WHERE t.reference_id = $1 OR t.reference_id IN (SELECT id FROM refunds WHERE charge_id = $1)
      GROUP BY e.account_id`,
    [chargeId],
  );
  return rows;
}

describe('refunds', () => {
  it('20 concurrent partial refunds of 1,000 on a 10,000 charge: exactly 10 succeed and the charge nets to zero everywhere', async () => {
    const carrier = await newCarrier(h, { revenue_share_bps: 3333 });
    const merchant = await newMerchant(h, { fee_bps: 177 });
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const paid = await charge(h, merchant, { msisdn: sub.msisdn, amount: '10000' });
    expect(paid.status).toBe(201);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => refund(merchant.key, paid.body.id, { amount: '1000' })),
    );
    expect(answers.filter((a) => a.status === 201)).toHaveLength(10);
    const refused = answers.filter((a) => a.status === 409);
    expect(refused).toHaveLength(10);
    for (const r of refused) expect(r.body.code).toBe('refund_exceeds_charge');
    const got = await h.http.get(`/v1/charges/${paid.body.id}`).set(bearer(merchant.key));
    expect(got.body).toMatchObject({
      status: 'succeeded',
      amount_captured: '10000',
      amount_refunded: '10000',
    });
    const totals = await accountTotalsFor(paid.body.id);
    expect(totals.length).toBe(4);
    for (const t of totals) expect(t.net).toBe('0');
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '10000',
      held: '0',
      available: '10000',
    });
    const list = await h.http
      .get(`/v1/charges/${paid.body.id}/refunds?limit=100`)
      .set(bearer(merchant.key));
    expect(list.body.data).toHaveLength(10);
    const sums = list.body.data.reduce(
      (acc: number[], r: { split: Record<string, string> }) => [
        acc[0]! + Number(r.split.carrier_share),
        acc[1]! + Number(r.split.gateway_fee),
        acc[2]! + Number(r.split.merchant_net),
      ],
      [0, 0, 0],
    );
    expect(sums).toEqual([
      Number(paid.body.split.carrier_share),
      Number(paid.body.split.gateway_fee),
      Number(paid.body.split.merchant_net),
    ]);
  });

  it('a full refund without an amount refunds what remains; another is 409', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const paid = await charge(h, merchant, { msisdn: sub.msisdn, amount: '7000' });
    const part = await refund(merchant.key, paid.body.id, { amount: '2000', reason: 'partial' });
    expect(part.status).toBe(201);
    expect(part.body).toMatchObject({
      object: 'refund',
      charge: paid.body.id,
      amount: '2000',
      reason: 'partial',
      status: 'succeeded',
    });
    const rest = await refund(merchant.key, paid.body.id);
    expect(rest.status).toBe(201);
    expect(rest.body.amount).toBe('5000');
    const more = await refund(merchant.key, paid.body.id, { amount: '1' });
    expect(more.status).toBe(409);
    expect(more.body.code).toBe('refund_exceeds_charge');
    const one = await h.http.get(`/v1/refunds/${part.body.id}`).set(bearer(merchant.key));
    expect(one.body).toEqual(part.body);
  });

  it('only succeeded charges can be refunded; another merchant sees 404', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const other = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const reserved = await charge(h, merchant, {
      msisdn: sub.msisdn,
      amount: '1000',
      capture: false,
    });
    const early = await refund(merchant.key, reserved.body.id);
    expect(early.status).toBe(409);
    expect(early.body.code).toBe('invalid_state');
    const paid = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' });
    expect((await refund(other.key, paid.body.id)).status).toBe(404);
    expect((await h.http.get(`/v1/charges/${paid.body.id}`).set(bearer(other.key))).status).toBe(
      404,
    );
  });

  it('a suspended merchant cannot charge (403) but can still refund', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const paid = await charge(
      h,
      merchant,
      { msisdn: sub.msisdn, amount: '3000' },
      'before-suspension',
    );
    const { newAdminKey } = await import('./helpers/harness.js');
    const admin = await newAdminKey(h);
    expect(
      (await h.http.post(`/v1/admin/merchants/${merchant.id}/suspend`).set(bearer(admin))).status,
    ).toBe(200);
    const blocked = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' });
    expect(blocked.status).toBe(403);
    expect(blocked.body.code).toBe('merchant_suspended');
    const replay = await charge(
      h,
      merchant,
      { msisdn: sub.msisdn, amount: '3000' },
      'before-suspension',
    );
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(paid.text);
    expect((await refund(merchant.key, paid.body.id)).status).toBe(201);
    expect(await subscriberBalance(h, sub)).toEqual({
      posted: '10000',
      held: '0',
      available: '10000',
    });
  });

  it('leaves the books balanced', async () => {
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});
