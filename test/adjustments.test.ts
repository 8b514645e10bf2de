import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staffKey } from './helpers/audit.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  subscriberBalance,
  verifyLedger,
} from './helpers/factories.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

function create(key: string, body: Record<string, unknown>, idem = `adj-${randomSuffix()}`) {
  return h.http
    .post('/v1/admin/adjustments')
    .set(bearer(key))
    .set('Idempotency-Key', idem)
    .send(body);
}

function approve(key: string, id: string, idem = `ok-${randomSuffix()}`) {
  return h.http
    .post(`/v1/admin/adjustments/${id}/approve`)
    .set(bearer(key))
    .set('Idempotency-Key', idem);
}

function reject(
  key: string,
  id: string,
  body?: Record<string, unknown>,
  idem = `no-${randomSuffix()}`,
) {
  const req = h.http
    .post(`/v1/admin/adjustments/${id}/reject`)
    .set(bearer(key))
    .set('Idempotency-Key', idem);
  return body ? req.send(body) : req;
}

interface Entry {
  kind: string;
  account_kind: string;
  owner_id: string;
  amount: string;
  currency: string;
}

/** The journal entries posted for a reference (an adjustment id), from the books themselves. */
async function entriesOf(referenceId: string): Promise<Entry[]> {
  const { rows } = await h.c.pool.query<Entry>(
    `SELECT t.kind, a.kind AS account_kind, a.owner_id, e.amount::text AS amount, e.currency
       FROM journal_transactions t
       JOIN journal_entries e ON e.transaction_id = t.id
       JOIN ledger_accounts a ON a.id = e.account_id
      WHERE t.reference_id = $1
      ORDER BY e.amount`,
    [referenceId],
  );
  return rows;
}

async function payable(merchantKey: string): Promise<string> {
  const res = await h.http.get('/v1/balance').set(bearer(merchantKey));
  expect(res.status).toBe(200);
  return (
    (res.body.balances as { currency: string; pending_settlement: string }[]).find(
      (b) => b.currency === 'VND',
    )?.pending_settlement ?? '0'
  );
}

describe('adjustments: four-eyes', () => {
  it('cannot be approved by its creator (403); another admin posts a balanced correction and the ledger verifies', async () => {
    const alice = await staffKey(h);
    const bob = await staffKey(h);
    const merchant = await newMerchant(h);
    const body = {
      account: { type: 'merchant_payable', owner_id: merchant.id },
      amount: '5000',
      currency: 'VND',
      direction: 'credit',
      reason: 'Goodwill credit for ticket 4711',
    };
    const idem = `adj-${randomSuffix()}`;
    const created = await create(alice.key, body, idem);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({
      object: 'adjustment',
      status: 'pending_approval',
      account: { type: 'merchant_payable', owner_id: merchant.id, msisdn: null },
      amount: '5000',
      currency: 'VND',
      direction: 'credit',
      reason: body.reason,
      created_by: alice.id,
      decided_by: null,
      decided_at: null,
    });
    expect(created.body.id).toMatch(/^adj_/);
    const id = created.body.id as string;

    // A replay answers the same bytes and creates nothing; the key with another body is refused.
    const replay = await create(alice.key, body, idem);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(created.text);
    const reused = await create(alice.key, { ...body, amount: '6000' }, idem);
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe('idempotency_key_reused');
    const { rows: count } = await h.c.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM adjustments WHERE created_by_key_id = $1',
      [alice.id],
    );
    expect(count[0]!.n).toBe(1);

    const before = await payable(merchant.key);
    const own = await approve(alice.key, id);
    expect(own.status).toBe(403);
    expect(own.body.code).toBe('forbidden');
    expect(own.body.detail).toMatch(/four-eyes/i);
    expect(await entriesOf(id)).toEqual([]);
    expect((await h.http.get(`/v1/admin/adjustments/${id}`).set(bearer(bob.key))).body.status).toBe(
      'pending_approval',
    );

    const approveKey = `ok-${randomSuffix()}`;
    const approved = await approve(bob.key, id, approveKey);
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect(approved.body).toMatchObject({ id, status: 'posted', decided_by: bob.id });
    expect(approved.body.decided_at).toEqual(expect.any(String));

    const entries = await entriesOf(id);
    expect(entries).toEqual([
      {
        kind: 'adjustment',
        account_kind: 'adjustments',
        owner_id: 'gateway',
        amount: '-5000',
        currency: 'VND',
      },
      {
        kind: 'adjustment',
        account_kind: 'merchant_payable',
        owner_id: merchant.id,
        amount: '5000',
        currency: 'VND',
      },
    ]);
    expect(BigInt(await payable(merchant.key)) - BigInt(before)).toBe(5000n);
    expect((await verifyLedger(h)).ok).toBe(true);

    // The approval replays; a second decision of any kind is a state conflict.
    const again = await approve(bob.key, id, approveKey);
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.text).toBe(approved.text);
    const twice = await approve(bob.key, id);
    expect(twice.status).toBe(409);
    expect(twice.body).toMatchObject({ code: 'invalid_state', current_status: 'posted' });
    const late = await reject(bob.key, id);
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('invalid_state');
    expect(await entriesOf(id)).toHaveLength(2);
  });

  it('a refused approval writes nothing, not even the suspense account it would open', async () => {
    const alice = await staffKey(h);
    const bob = await staffKey(h);
    const created = await create(alice.key, {
      account: { type: 'gateway_fees' },
      amount: '1.250',
      currency: 'BHD',
      direction: 'credit',
      reason: 'first correction in this currency',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const suspense = async () => {
      const { rows } = await h.c.pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM ledger_accounts WHERE kind = 'adjustments' AND currency = 'BHD'",
      );
      return rows[0]!.n;
    };
    const audit = async () => {
      const { rows } = await h.c.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM audit_events WHERE object_id = $1',
        [created.body.id],
      );
      return rows[0]!.n;
    };
    expect((await approve(alice.key, created.body.id as string)).status).toBe(403);
    expect(await suspense()).toBe(0);
    expect(await audit()).toBe(1);
    expect((await approve(bob.key, created.body.id as string)).status).toBe(200);
    expect(await suspense()).toBe(1);
    expect(await audit()).toBe(2);
    expect(await entriesOf(created.body.id as string)).toEqual([
      expect.objectContaining({ account_kind: 'adjustments', amount: '-1250', currency: 'BHD' }),
      expect.objectContaining({ account_kind: 'gateway_fees', amount: '1250', currency: 'BHD' }),
    ]);
  });

  it('two other admins approving at once post it exactly once', async () => {
    const alice = await staffKey(h);
    const approvers = await Promise.all([1, 2, 3, 4].map(() => staffKey(h)));
    const carrier = await newCarrier(h);
    const created = await create(alice.key, {
      account: { type: 'carrier_funding', owner_id: carrier.id },
      amount: '700',
      currency: 'VND',
      direction: 'credit',
      reason: 'late bank transfer',
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const answers = await Promise.all(approvers.map((a) => approve(a.key, id)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409, 409]);
    expect(await entriesOf(id)).toHaveLength(2);
    const posted = answers.find((a) => a.status === 200)!;
    expect(approvers.map((a) => a.id)).toContain(posted.body.decided_by);
  });

  it('a rejected adjustment posts nothing and cannot be approved afterwards; its creator may withdraw one', async () => {
    const alice = await staffKey(h);
    const bob = await staffKey(h);
    const body = {
      account: { type: 'gateway_fees' },
      amount: '12.34',
      currency: 'USD',
      direction: 'debit',
      reason: 'fee charged twice',
    };
    const first = await create(alice.key, body);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body.account).toEqual({ type: 'gateway_fees', owner_id: null, msisdn: null });
    const rejected = await reject(bob.key, first.body.id as string, { reason: 'not a duplicate' });
    expect(rejected.status).toBe(200);
    expect(rejected.body).toMatchObject({
      status: 'rejected',
      decided_by: bob.id,
      rejection_reason: 'not a duplicate',
    });
    const after = await approve(bob.key, first.body.id as string);
    expect(after.status).toBe(409);
    expect(after.body).toMatchObject({ code: 'invalid_state', current_status: 'rejected' });
    expect(await entriesOf(first.body.id as string)).toEqual([]);

    const second = await create(alice.key, body);
    const withdrawn = await reject(alice.key, second.body.id as string);
    expect(withdrawn.status).toBe(200);
    expect(withdrawn.body).toMatchObject({ status: 'rejected', rejection_reason: null });
    expect(await entriesOf(second.body.id as string)).toEqual([]);
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});

describe('adjustments: subscriber accounts', () => {
  it("a debit respects the subscriber's floor, at creation and again when it posts", async () => {
    const alice = await staffKey(h);
    const bob = await staffKey(h);
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const account = { type: 'subscriber', owner_id: carrier.id, msisdn: sub.msisdn };
    const debit = (amount: string) =>
      create(alice.key, {
        account,
        amount,
        currency: 'VND',
        direction: 'debit',
        reason: 'duplicate top-up',
      });

    const tooMuch = await debit('15000');
    expect(tooMuch.status).toBe(409);
    expect(tooMuch.body).toMatchObject({ code: 'account_floor_exceeded', debitable: '10000' });

    const created = await debit('8000');
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.account).toEqual({
      type: 'subscriber',
      owner_id: carrier.id,
      msisdn: `${sub.msisdn.slice(0, 5)}****${sub.msisdn.slice(-3)}`,
    });
    // The subscriber spends meanwhile: the debit no longer fits, and stays pending.
    expect((await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' })).status).toBe(201);
    const refused = await approve(bob.key, created.body.id as string);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'account_floor_exceeded', debitable: '5000' });
    expect(await entriesOf(created.body.id as string)).toEqual([]);
    const still = await h.http.get(`/v1/admin/adjustments/${created.body.id}`).set(bearer(bob.key));
    expect(still.body.status).toBe('pending_approval');

    const top = await h.http
      .post(`/v1/carrier/subscribers/${sub.msisdn}/topups`)
      .set(bearer(carrier.key))
      .set('Idempotency-Key', `t-${randomSuffix()}`)
      .send({ amount: '10000', currency: 'VND', reference: 'refill' });
    expect(top.status).toBe(201);
    const posted = await approve(bob.key, created.body.id as string);
    expect(posted.status, JSON.stringify(posted.body)).toBe(200);
    expect(await subscriberBalance(h, sub)).toMatchObject({ posted: '7000', available: '7000' });

    const credit = await create(alice.key, {
      account,
      amount: '500',
      currency: 'VND',
      direction: 'credit',
      reason: 'compensation',
    });
    expect((await approve(bob.key, credit.body.id as string)).status).toBe(200);
    expect(await subscriberBalance(h, sub)).toMatchObject({ available: '7500' });
    expect((await verifyLedger(h)).ok).toBe(true);
  });

  it('a postpaid debit may run down to the credit limit and no further', async () => {
    const alice = await staffKey(h);
    const bob = await staffKey(h);
    const carrier = await newCarrier(h);
    const sub = await newSubscriber(h, carrier, { funding_type: 'postpaid', credit_limit: '3000' });
    const account = { type: 'subscriber', owner_id: carrier.id, msisdn: sub.msisdn };
    const over = await create(alice.key, {
      account,
      amount: '3001',
      currency: 'VND',
      direction: 'debit',
      reason: 'x',
    });
    expect(over.status).toBe(409);
    expect(over.body.code).toBe('account_floor_exceeded');
    const exact = await create(alice.key, {
      account,
      amount: '3000',
      currency: 'VND',
      direction: 'debit',
      reason: 'x',
    });
    expect(exact.status).toBe(201);
    expect((await approve(bob.key, exact.body.id as string)).status).toBe(200);
    expect(await subscriberBalance(h, sub)).toMatchObject({ posted: '-3000', available: '-3000' });
  });
});

describe('adjustments: input and roles', () => {
  it('refuses unknown owners, misnamed accounts, a foreign currency and a missing Idempotency-Key, writing nothing', async () => {
    const alice = await staffKey(h);
    const carrier = await newCarrier(h);
    const base = { amount: '100', currency: 'VND', direction: 'credit', reason: 'r' };
    const cases: [Record<string, unknown>, number, string, string?][] = [
      [
        { type: 'merchant_payable', owner_id: 'mer_unknown' },
        400,
        'validation_failed',
        'account.owner_id',
      ],
      [{ type: 'merchant_payable' }, 400, 'validation_failed', 'account.owner_id'],
      [
        { type: 'carrier_share', owner_id: 'car_unknown' },
        400,
        'validation_failed',
        'account.owner_id',
      ],
      [
        { type: 'gateway_fees', owner_id: carrier.id },
        400,
        'validation_failed',
        'account.owner_id',
      ],
      [
        { type: 'carrier_share', owner_id: carrier.id, msisdn: '+84901234567' },
        400,
        'validation_failed',
        'account.msisdn',
      ],
      [{ type: 'subscriber', owner_id: carrier.id }, 400, 'validation_failed', 'account.msisdn'],
      [
        { type: 'subscriber', owner_id: carrier.id, msisdn: '+84999000111' },
        404,
        'subscriber_not_found',
      ],
      [{ type: 'adjustments', owner_id: 'gateway' }, 400, 'validation_failed'],
    ];
    for (const [account, status, code, param] of cases) {
      const res = await create(alice.key, { ...base, account });
      expect(res.status, JSON.stringify(account)).toBe(status);
      expect(res.body.code, JSON.stringify(account)).toBe(code);
      if (param) expect(res.body.param).toBe(param);
    }
    const usd = await create(alice.key, {
      ...base,
      currency: 'USD',
      account: { type: 'carrier_funding', owner_id: carrier.id },
    });
    expect(usd.status).toBe(422);
    expect(usd.body.code).toBe('currency_mismatch');
    const decimals = await create(alice.key, {
      ...base,
      amount: '1.5',
      account: { type: 'carrier_funding', owner_id: carrier.id },
    });
    expect(decimals.status).toBe(400);
    expect(decimals.body.code).toBe('invalid_amount');
    const noKey = await h.http
      .post('/v1/admin/adjustments')
      .set(bearer(alice.key))
      .send({ ...base, account: { type: 'carrier_funding', owner_id: carrier.id } });
    expect(noKey.status).toBe(400);
    expect(noKey.body.code).toBe('idempotency_key_missing');
    const { rows } = await h.c.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM adjustments WHERE created_by_key_id = $1',
      [alice.id],
    );
    expect(rows[0]!.n).toBe(0);
    expect((await approve(alice.key, 'adj_00000000000000000000000000')).status).toBe(404);
  });

  it('lists and reads for admins and auditors; only admins write', async () => {
    const alice = await staffKey(h);
    const auditor = await staffKey(h, 'auditor');
    const merchant = await newMerchant(h);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await create(alice.key, {
        account: { type: 'merchant_payable', owner_id: merchant.id },
        amount: `${100 + i}`,
        currency: 'VND',
        direction: 'credit',
        reason: `listing ${i}`,
      });
      ids.push(res.body.id as string);
    }
    expect((await reject(alice.key, ids[1]!)).status).toBe(200);
    const one = await h.http.get(`/v1/admin/adjustments/${ids[0]}`).set(bearer(auditor.key));
    expect(one.status).toBe(200);
    expect(one.body.amount).toBe('100');
    const pending = await h.http
      .get('/v1/admin/adjustments')
      .query({ status: 'pending_approval', limit: 100 })
      .set(bearer(auditor.key));
    expect(pending.status).toBe(200);
    const pendingIds = (pending.body.data as { id: string }[]).map((a) => a.id);
    expect(pendingIds).toEqual(expect.arrayContaining([ids[2], ids[0]]));
    expect(pendingIds).not.toContain(ids[1]);
    expect(pendingIds.indexOf(ids[2]!)).toBeLessThan(pendingIds.indexOf(ids[0]!));
    const page = await h.http
      .get('/v1/admin/adjustments')
      .query({ limit: 1, starting_after: ids[2] })
      .set(bearer(alice.key));
    expect(page.status).toBe(200);
    expect(page.body.data[0].id).toBe(ids[1]);
    expect((await approve(auditor.key, ids[0]!)).status).toBe(403);
    expect((await reject(auditor.key, ids[0]!)).status).toBe(403);
    expect(
      (
        await create(auditor.key, {
          account: { type: 'gateway_fees' },
          amount: '1',
          currency: 'VND',
          direction: 'credit',
          reason: 'r',
        })
      ).status,
    ).toBe(403);
    expect((await h.http.get('/v1/admin/adjustments').set(bearer(merchant.key))).status).toBe(403);
  });
});
