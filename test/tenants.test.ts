import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createHarness, newAdminKey, type Harness } from './helpers/harness.js';
import { newCarrier, newMerchant, newSubscriber } from './helpers/factories.js';

let h: Harness;
let admin: string;
beforeAll(async () => {
  h = await createHarness();
  admin = await newAdminKey(h);
});
afterAll(() => h.close());

describe('onboarding carriers and merchants', () => {
  it('creates a carrier with VND defaults, reads, updates, suspends and reactivates it', async () => {
    const carrier = await newCarrier(h, { otp_threshold: '200000' });
    expect(carrier.body).toMatchObject({
      currency: 'VND',
      timezone: 'Asia/Ho_Chi_Minh',
      revenue_share_bps: 3000,
      status: 'active',
      otp_threshold: '200000',
      limits: {
        prepaid: { per_transaction_max: '5000000', daily_max: null, monthly_max: '10000000' },
        postpaid: { per_transaction_max: '500000', daily_max: null, monthly_max: null },
      },
    });
    expect(carrier.id).toMatch(/^car_[0-9a-z]{26}$/);
    const patched = await h.http
      .patch(`/v1/admin/carriers/${carrier.id}`)
      .set(bearer(admin))
      .send({ revenue_share_bps: 2500, limits: { prepaid: { daily_max: '2000000' } } });
    expect(patched.status).toBe(200);
    expect(patched.body.revenue_share_bps).toBe(2500);
    expect(patched.body.limits.prepaid).toEqual({
      per_transaction_max: '5000000',
      daily_max: '2000000',
      monthly_max: '10000000',
    });
    const suspended = await h.http
      .post(`/v1/admin/carriers/${carrier.id}/suspend`)
      .set(bearer(admin));
    expect(suspended.body.status).toBe('suspended');
    const active = await h.http
      .post(`/v1/admin/carriers/${carrier.id}/activate`)
      .set(bearer(admin));
    expect(active.body.status).toBe('active');
    const got = await h.http.get(`/v1/admin/carriers/${carrier.id}`).set(bearer(admin));
    expect(got.body).toEqual(active.body);
  });

  it('refuses a duplicate carrier code (409), an unknown time zone and an unsupported currency (400)', async () => {
    const carrier = await newCarrier(h);
    const dup = await h.http.post('/v1/admin/carriers').set(bearer(admin)).send({
      code: carrier.code,
      name: 'Again',
      currency: 'VND',
      timezone: 'Asia/Ho_Chi_Minh',
      revenue_share_bps: 1,
    });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ code: 'already_exists', param: 'code' });
    const tz = await h.http
      .post('/v1/admin/carriers')
      .set(bearer(admin))
      .send({
        code: `tz-${Date.now()}`,
        name: 'TZ',
        currency: 'VND',
        timezone: 'Mars/Olympus',
        revenue_share_bps: 1,
      });
    expect(tz.status).toBe(400);
    expect(tz.body.param).toBe('timezone');
    const cur = await h.http
      .post('/v1/admin/carriers')
      .set(bearer(admin))
      .send({
        code: `cur-${Date.now()}`,
        name: 'Cur',
        currency: 'XXX',
        timezone: 'UTC',
        revenue_share_bps: 1,
      });
    expect(cur.status).toBe(400);
    expect(cur.body.code).toBe('unsupported_currency');
  });

  it('creates a merchant, showing the webhook secret only at creation', async () => {
    const res = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin))
      .send({
        name: 'Game Shop',
        fee_bps: 300,
        webhook_url: 'http://127.0.0.1:9/hook',
        per_transaction_max: { amount: '200000', currency: 'VND' },
        consent: 'always_otp',
      });
    expect(res.status).toBe(201);
    expect(res.body.webhook_secret).toMatch(/^whsec_/);
    expect(res.body).toMatchObject({
      name: 'Game Shop',
      fee_bps: 300,
      status: 'active',
      consent: 'always_otp',
      per_transaction_max: { amount: '200000', currency: 'VND' },
    });
    const got = await h.http.get(`/v1/admin/merchants/${res.body.id}`).set(bearer(admin));
    expect(got.body.webhook_secret).toBeUndefined();
    const list = await h.http.get('/v1/admin/merchants?limit=100').set(bearer(admin));
    expect(list.body.data.map((m: { id: string }) => m.id)).toContain(res.body.id);
  });
});

describe('roles and tenants', () => {
  it('enforces roles per route: 403 forbidden for the wrong role', async () => {
    const merchant = await newMerchant(h);
    const carrier = await newCarrier(h);
    const auditor = await newAdminKey(h, 'auditor');
    const cases: [string, string, string, object?][] = [
      [merchant.key, 'GET', '/v1/admin/merchants'],
      [carrier.key, 'POST', '/v1/admin/merchants', { name: 'x', fee_bps: 1 }],
      [auditor, 'POST', '/v1/admin/merchants', { name: 'x', fee_bps: 1 }],
      [auditor, 'POST', '/v1/admin/api-keys', { role: 'admin' }],
      [carrier.key, 'GET', '/v1/charges'],
      [merchant.key, 'GET', '/v1/carrier/subscribers/+84900000001'],
      [
        admin,
        'POST',
        '/v1/charges',
        { msisdn: '+84900000001', amount: '1', currency: 'VND', description: 'x' },
      ],
    ];
    for (const [key, method, path, body] of cases) {
      const req = method === 'GET' ? h.http.get(path) : h.http.post(path).send(body ?? {});
      const res = await req.set(bearer(key)).set('Idempotency-Key', 'role-test');
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.code).toBe('forbidden');
    }
    expect((await h.http.get('/v1/admin/merchants').set(bearer(auditor))).status).toBe(200);
  });

  it('a wrong-role key gets 403 before its body is validated, learning nothing of the schema', async () => {
    const merchant = await newMerchant(h);
    const carrier = await newCarrier(h);
    const auditor = await newAdminKey(h, 'auditor');
    for (const [key, path] of [
      [merchant.key, '/v1/admin/carriers'],
      [auditor, '/v1/admin/carriers'],
      [carrier.key, '/v1/charges'],
      [merchant.key, '/v1/carrier/subscribers/+84900000001/topups'],
    ] as const) {
      const res = await h.http.post(path).set(bearer(key)).set('Idempotency-Key', 'gate').send({});
      expect(res.status, path).toBe(403);
      expect(res.body.code).toBe('forbidden');
      expect(res.body.errors).toBeUndefined();
    }
  });

  it("another tenant's objects answer 404, never revealing that they exist", async () => {
    const carrierA = await newCarrier(h);
    const carrierB = await newCarrier(h);
    const sub = await newSubscriber(h, carrierA, { balance: '1000' });
    const asB = await h.http.get(`/v1/carrier/subscribers/${sub.msisdn}`).set(bearer(carrierB.key));
    expect(asB.status).toBe(404);
    expect(asB.body.code).toBe('subscriber_not_found');
    const asA = await h.http.get(`/v1/carrier/subscribers/${sub.msisdn}`).set(bearer(carrierA.key));
    expect(asA.status).toBe(200);
  });

  it('a revoked key stops working at once; keys are stored only as hashes', async () => {
    const merchant = await newMerchant(h);
    expect((await h.http.get('/v1/charges').set(bearer(merchant.key))).status).toBe(200);
    const list = await h.http.get(`/v1/admin/api-keys?owner_id=${merchant.id}`).set(bearer(admin));
    expect(list.body.data).toHaveLength(1);
    const keyId = list.body.data[0].id as string;
    expect(JSON.stringify(list.body)).not.toContain(merchant.key);
    const { rows } = await h.c.pool.query('SELECT * FROM api_keys WHERE id = $1', [keyId]);
    expect(JSON.stringify(rows)).not.toContain(merchant.key.slice(12));
    const revoked = await h.http.delete(`/v1/admin/api-keys/${keyId}`).set(bearer(admin));
    expect(revoked.status).toBe(200);
    expect(revoked.body.revoked_at).not.toBeNull();
    const after = await h.http.get('/v1/charges').set(bearer(merchant.key));
    expect(after.status).toBe(401);
    expect(after.body.code).toBe('unauthenticated');
  });

  it('refuses keys whose owner does not exist or does not fit the role', async () => {
    const noOwner = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin))
      .send({ role: 'merchant' });
    expect(noOwner.status).toBe(400);
    expect(noOwner.body.param).toBe('owner_id');
    const ghost = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin))
      .send({ role: 'merchant', owner_id: 'mer_00000000000000000000000000' });
    expect(ghost.status).toBe(400);
    const adminWithOwner = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin))
      .send({ role: 'admin', owner_id: 'mer_x' });
    expect(adminWithOwner.status).toBe(400);
  });
});
