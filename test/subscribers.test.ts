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

describe('one carrier per number (SPEC §9.1)', () => {
  const put = (key: string, msisdn: string, body: Record<string, unknown>) =>
    h.http.put(`/v1/carrier/subscribers/${msisdn}`).set(bearer(key)).send(body);
  const withoutRequestId = (body: Record<string, unknown>) => {
    const { request_id: _ignored, ...rest } = body;
    void _ignored;
    return rest;
  };

  it("a second carrier's PUT of a held number is 409 msisdn_held_elsewhere, says nothing of the holder and writes nothing", async () => {
    const first = await newCarrier(h);
    const second = await newCarrier(h);
    const third = await newCarrier(h);
    const heldByFirst = await newSubscriber(h, first, { balance: '3000' });
    const heldBySecond = await newSubscriber(h, second);
    const before = await h.http
      .get(`/v1/carrier/subscribers/${heldByFirst.msisdn}`)
      .set(bearer(first.key));

    const refused = await put(second.key, heldByFirst.msisdn, {
      funding_type: 'postpaid',
      status: 'barred',
      credit_limit: '1000',
    });
    expect(refused.status).toBe(409);
    expect(refused.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(refused.body).toMatchObject({ code: 'msisdn_held_elsewhere', status: 409 });
    const text = JSON.stringify(refused.body);
    expect(text).not.toContain(first.id);
    expect(text).not.toContain(first.code);
    // The same answer whoever holds the number.
    const other = await put(third.key, heldBySecond.msisdn, {
      funding_type: 'prepaid',
      status: 'active',
    });
    const otherHolder = await put(third.key, heldByFirst.msisdn, {
      funding_type: 'prepaid',
      status: 'active',
    });
    expect(withoutRequestId(other.body)).toEqual(withoutRequestId(refused.body));
    expect(withoutRequestId(otherHolder.body)).toEqual(withoutRequestId(refused.body));

    // Nothing written: the second carrier has no record, the holder's is unchanged.
    expect(
      (await h.http.get(`/v1/carrier/subscribers/${heldByFirst.msisdn}`).set(bearer(second.key)))
        .status,
    ).toBe(404);
    const after = await h.http
      .get(`/v1/carrier/subscribers/${heldByFirst.msisdn}`)
      .set(bearer(first.key));
    expect(after.body).toEqual(before.body);
    const { rows } = await h.c.pool.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM subscribers WHERE msisdn = $1',
      [heldByFirst.msisdn],
    );
    expect(rows[0]!.n).toBe('1');
    const topup2 = await topup(second.key, heldByFirst.msisdn, '500');
    expect(topup2.status).toBe(404);
    // The holder's own update still works.
    expect(
      (await put(first.key, heldByFirst.msisdn, { funding_type: 'prepaid', status: 'suspended' }))
        .status,
    ).toBe(200);
  });

  it('when two carriers PUT one new number at once, exactly one holds it and the other gets 409', async () => {
    for (let round = 0; round < 5; round++) {
      const carriers = await Promise.all([newCarrier(h), newCarrier(h), newCarrier(h)]);
      const msisdn = randomMsisdn();
      const answers = await Promise.all(
        carriers.flatMap((c) =>
          [1, 2].map(() => put(c.key, msisdn, { funding_type: 'prepaid', status: 'active' })),
        ),
      );
      const statuses = answers.map((a) => a.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(1);
      const winner = carriers[Math.floor(statuses.indexOf(201) / 2)]!;
      answers.forEach((a, i) => {
        const carrier = carriers[Math.floor(i / 2)]!;
        if (carrier === winner) expect([200, 201], JSON.stringify(a.body)).toContain(a.status);
        else expect(a.body.code, JSON.stringify(a.body)).toBe('msisdn_held_elsewhere');
      });
      const { rows } = await h.c.pool.query<{ carrier_id: string }>(
        'SELECT carrier_id FROM subscribers WHERE msisdn = $1',
        [msisdn],
      );
      expect(rows).toEqual([{ carrier_id: winner.id }]);
    }
  });

  it('the database itself refuses a second holder of a number', async () => {
    const first = await newCarrier(h);
    const second = await newCarrier(h);
    const held = await newSubscriber(h, first);
    const account = await h.c.pool.query<{ id: string }>(
      `INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot, floor)
       VALUES ($1, 'subscriber', $1, 'VND', false, 0) RETURNING id`,
      [`acc_test_${Math.random().toString(36).slice(2)}`],
    );
    await expect(
      h.c.pool.query(
        `INSERT INTO subscribers (id, carrier_id, msisdn, funding_type, status, account_id)
         VALUES ($1, $2, $3, 'prepaid', 'active', $4)`,
        [
          `sub_test_${Math.random().toString(36).slice(2)}`,
          second.id,
          held.msisdn,
          account.rows[0]!.id,
        ],
      ),
    ).rejects.toMatchObject({ code: '23505', constraint: 'subscribers_msisdn_holder_idx' });
  });
});
