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

async function chargeRows(merchantId: string): Promise<number> {
  const { rows } = await h.c.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM charges WHERE merchant_id = $1',
    [merchantId],
  );
  return rows[0]!.n;
}

async function entriesFor(chargeId: string): Promise<number> {
  const { rows } = await h.c.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM journal_entries e JOIN journal_transactions t ON t.id = e.transaction_id WHERE t.reference_id = $1`,
    [chargeId],
  );
  return rows[0]!.n;
}

describe('idempotency: exactly-once money movement', () => {
  it('100 concurrent identical charges with one key move money once; every answer is the same 201 or 409 in progress', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '1000000' });
    const key = `same-${Math.random()}`;
    const answers = await Promise.all(
      Array.from({ length: 100 }, () =>
        charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key),
      ),
    );
    const created = answers.filter((a) => a.status === 201);
    const inProgress = answers.filter((a) => a.status === 409);
    expect(answers.filter((a) => a.status !== 201 && a.status !== 409).map((a) => a.text)).toEqual(
      [],
    );
    expect(created.length + inProgress.length).toBe(100);
    expect(created.length).toBeGreaterThanOrEqual(1);
    for (const a of inProgress) {
      expect(a.body.code).toBe('idempotency_request_in_progress');
      expect(a.headers['retry-after']).toBe('1');
    }
    const bodies = new Set(created.map((a) => a.text));
    expect(bodies.size).toBe(1);
    const id = created[0]!.body.id as string;
    expect(await chargeRows(merchant.id)).toBe(1);
    expect(await entriesFor(id)).toBe(4);
    expect((await subscriberBalance(h, sub)).available).toBe('995000');

    const replay = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.text).toBe(created[0]!.text);

    const reused = await charge(h, merchant, { msisdn: sub.msisdn, amount: '6000' }, key);
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe('idempotency_key_reused');
    expect(await chargeRows(merchant.id)).toBe(1);
    expect((await subscriberBalance(h, sub)).available).toBe('995000');
  });

  it('treats "12.50" and "12.5" as the same request, and keys of different merchants as different', async () => {
    const carrier = await newCarrier(h, {
      currency: 'USD',
      code: `usd-${Math.floor(Math.random() * 1e9)}`,
    });
    const a = await newMerchant(h);
    const b = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100.00' });
    const key = `shared-${Math.random()}`;
    const first = await charge(h, a, { msisdn: sub.msisdn, amount: '12.50', currency: 'USD' }, key);
    expect(first.status, first.text).toBe(201);
    const again = await charge(h, a, { msisdn: sub.msisdn, amount: '12.5', currency: 'USD' }, key);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const other = await charge(h, b, { msisdn: sub.msisdn, amount: '12.50', currency: 'USD' }, key);
    expect(other.status).toBe(201);
    expect(other.body.id).not.toBe(first.body.id);
    expect((await subscriberBalance(h, sub)).available).toBe('75.00');
  });

  it('replays a recorded denial (402) byte for byte without charging again', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '1000' });
    const key = `deny-${Math.random()}`;
    const denied = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key);
    expect(denied.status).toBe(402);
    expect(denied.body).toMatchObject({ code: 'insufficient_funds', status: 402 });
    expect(denied.body.charge_id).toMatch(/^ch_/);
    const replay = await charge(h, merchant, { msisdn: sub.msisdn, amount: '5000' }, key);
    expect(replay.status).toBe(402);
    expect(replay.text).toBe(denied.text);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(await chargeRows(merchant.id)).toBe(1);
  });

  it('validation errors, unknown subscribers and missing keys are not stored: the key stays free', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const key = `free-${Math.random()}`;
    const invalid = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1.5' }, key);
    expect(invalid.status).toBe(400);
    expect(invalid.body.code).toBe('invalid_amount');
    const unknown = await charge(h, merchant, { msisdn: '+84999999999', amount: '1000' }, key);
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('subscriber_not_found');
    const ok = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' }, key);
    expect(ok.status).toBe(201);
    expect(ok.headers['idempotent-replayed']).toBeUndefined();

    const missing = await h.http
      .post('/v1/charges')
      .set(bearer(merchant.key))
      .send({ msisdn: sub.msisdn, amount: '1000', currency: 'VND', description: 'x' });
    expect(missing.status).toBe(400);
    expect(missing.body.code).toBe('idempotency_key_missing');
    for (const bad of ['', 'x'.repeat(256), 'tab\there']) {
      const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' }, bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(['idempotency_key_invalid', 'idempotency_key_missing']).toContain(res.body.code);
    }
    expect(await chargeRows(merchant.id)).toBe(1);
  });

  it('the reaper removes keys older than the retention and keeps newer ones', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '10000' });
    const oldKey = `old-${Math.random()}`;
    const newKey = `new-${Math.random()}`;
    await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' }, oldKey);
    await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' }, newKey);
    await h.c.pool.query(
      `UPDATE idempotency_keys SET created_at = now() - interval '73 hours' WHERE owner_id = $1 AND key = $2`,
      [merchant.id, oldKey],
    );
    while ((await h.c.idempotency.reaper().runOnce()) > 0) {
      /* drain */
    }
    const { rows } = await h.c.pool.query<{ key: string }>(
      'SELECT key FROM idempotency_keys WHERE owner_id = $1 ORDER BY key',
      [merchant.id],
    );
    expect(rows.map((r) => r.key)).toEqual([newKey]);
  });

  it('replays do not count against the subscriber charge velocity; a velocity 429 is not stored', async () => {
    const limited = await createHarness({ env: { RATE_LIMIT_MSISDN_PER_MINUTE: '2' } });
    try {
      const carrier = await newCarrier(limited);
      const merchant = await newMerchant(limited);
      const sub = await newSubscriber(limited, carrier, { balance: '100000' });
      const first = await charge(
        limited,
        merchant,
        { msisdn: sub.msisdn, amount: '1000' },
        'velocity-1',
      );
      expect(first.status).toBe(201);
      for (let i = 0; i < 3; i++) {
        const replay = await charge(
          limited,
          merchant,
          { msisdn: sub.msisdn, amount: '1000' },
          'velocity-1',
        );
        expect(replay.headers['idempotent-replayed']).toBe('true');
      }
      expect(
        (await charge(limited, merchant, { msisdn: sub.msisdn, amount: '1000' }, 'velocity-2'))
          .status,
      ).toBe(201);
      const third = await charge(
        limited,
        merchant,
        { msisdn: sub.msisdn, amount: '1000' },
        'velocity-3',
      );
      expect(third.status).toBe(429);
      expect(third.body.code).toBe('rate_limited');
      expect(Number(third.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      const { rows } = await limited.c.pool.query(
        'SELECT 1 FROM idempotency_keys WHERE owner_id = $1 AND key = $2',
        [merchant.id, 'velocity-3'],
      );
      expect(rows).toHaveLength(0);
    } finally {
      await limited.close();
    }
  });

  it('leaves the books balanced', async () => {
    expect((await verifyLedger(h)).ok).toBe(true);
  });
});
