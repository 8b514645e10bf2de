import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staffKey } from './helpers/audit.js';
import { newCarrier, newMerchant } from './helpers/factories.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

interface EventItem {
  id: string;
  seq: number | null;
  occurred_at: string;
  actor: { type: string; id: string | null; api_key_id: string | null; ip: string | null };
  action: string;
  object: { type: string; id: string };
  request_id: string | null;
  summary: Record<string, unknown>;
  hash: string | null;
}

async function events(key: string, query: Record<string, string | number>): Promise<EventItem[]> {
  const res = await h.http.get('/v1/admin/audit-events').query(query).set(bearer(key));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.data as EventItem[];
}

/** Walks every page of a query with the given page size. */
async function allPages(
  key: string,
  query: Record<string, string | number>,
  limit: number,
): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let pages = 0;
  let after: string | undefined;
  for (;;) {
    const res = await h.http
      .get('/v1/admin/audit-events')
      .query({ ...query, limit, ...(after ? { starting_after: after } : {}) })
      .set(bearer(key));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    pages++;
    const data = res.body.data as EventItem[];
    expect(data.length).toBeLessThanOrEqual(limit);
    ids.push(...data.map((e) => e.id));
    if (!res.body.has_more) return { ids, pages };
    expect(data).toHaveLength(limit);
    after = data[data.length - 1]!.id;
  }
}

describe('audit trail: every admin change leaves its event', () => {
  it('records create merchant, create carrier, create and revoke api key and suspend merchant with actor, key and request id', async () => {
    const admin = await staffKey(h);
    const actor = { type: 'admin', id: admin.id, api_key_id: admin.id };

    const merchant = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin.key))
      .send({ name: `Audited ${randomSuffix()}`, fee_bps: 150 });
    expect(merchant.status).toBe(201);
    const merchantEvents = await events(admin.key, {
      object_type: 'merchant',
      object_id: merchant.body.id,
    });
    expect(merchantEvents).toHaveLength(1);
    expect(merchantEvents[0]).toMatchObject({
      action: 'merchant.created',
      object: { type: 'merchant', id: merchant.body.id },
      actor,
      request_id: merchant.headers['request-id'],
      summary: { name: merchant.body.name, fee_bps: 150, webhook: false },
    });
    expect(typeof merchantEvents[0]!.actor.ip).toBe('string');
    expect(merchantEvents[0]!.occurred_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    const code = `aud-${randomSuffix()}`;
    const carrier = await h.http
      .post('/v1/admin/carriers')
      .set(bearer(admin.key))
      .set('X-Request-Id', `trace-${code}`)
      .send({
        code,
        name: `Carrier ${code}`,
        currency: 'VND',
        timezone: 'Asia/Ho_Chi_Minh',
        revenue_share_bps: 2500,
      });
    expect(carrier.status).toBe(201);
    expect(carrier.headers['request-id']).toBe(`trace-${code}`);
    const carrierEvents = await events(admin.key, {
      object_type: 'carrier',
      object_id: carrier.body.id,
    });
    expect(carrierEvents).toHaveLength(1);
    expect(carrierEvents[0]).toMatchObject({
      action: 'carrier.created',
      object: { type: 'carrier', id: carrier.body.id },
      actor,
      request_id: `trace-${code}`,
    });

    const apiKey = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin.key))
      .send({ role: 'merchant', owner_id: merchant.body.id });
    expect(apiKey.status).toBe(201);
    const keyCreated = await events(admin.key, {
      object_type: 'api_key',
      object_id: apiKey.body.id,
    });
    expect(keyCreated).toHaveLength(1);
    expect(keyCreated[0]).toMatchObject({
      action: 'api_key.created',
      object: { type: 'api_key', id: apiKey.body.id },
      actor,
      request_id: apiKey.headers['request-id'],
      summary: { role: 'merchant', owner_id: merchant.body.id },
    });
    expect(JSON.stringify(keyCreated[0])).not.toContain(apiKey.body.key);

    const revoked = await h.http
      .delete(`/v1/admin/api-keys/${apiKey.body.id}`)
      .set(bearer(admin.key));
    expect(revoked.status).toBe(200);
    const keyEvents = await events(admin.key, {
      object_type: 'api_key',
      object_id: apiKey.body.id,
    });
    expect(keyEvents.map((e) => e.action)).toEqual(['api_key.revoked', 'api_key.created']);
    expect(keyEvents[0]).toMatchObject({ actor, request_id: revoked.headers['request-id'] });

    const suspended = await h.http
      .post(`/v1/admin/merchants/${merchant.body.id}/suspend`)
      .set(bearer(admin.key));
    expect(suspended.status).toBe(200);
    const afterSuspend = await events(admin.key, {
      object_type: 'merchant',
      object_id: merchant.body.id,
    });
    expect(afterSuspend.map((e) => e.action)).toEqual(['merchant.suspended', 'merchant.created']);
    expect(afterSuspend[0]).toMatchObject({
      actor,
      request_id: suspended.headers['request-id'],
      summary: { from: 'active', to: 'suspended' },
    });

    // Nothing else was recorded for this admin key: exactly one event per change, newest first.
    const byActor = await events(admin.key, { actor_id: admin.id });
    expect(byActor.map((e) => [e.action, e.object.id])).toEqual([
      ['merchant.suspended', merchant.body.id],
      ['api_key.revoked', apiKey.body.id],
      ['api_key.created', apiKey.body.id],
      ['carrier.created', carrier.body.id],
      ['merchant.created', merchant.body.id],
    ]);
  });

  it('records nothing for a request that changed nothing', async () => {
    const admin = await staffKey(h);
    const bad = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin.key))
      .send({ name: 'No fee', fee_bps: 20_000 });
    expect(bad.status).toBe(400);
    const missing = await h.http
      .post('/v1/admin/merchants/mer_00000000000000000000000000/suspend')
      .set(bearer(admin.key));
    expect(missing.status).toBe(404);
    expect(await events(admin.key, { actor_id: admin.id })).toEqual([]);
  });
});

describe('audit trail: who may read it', () => {
  it('lets auditors read events and the chain verification; merchant and carrier keys get 403', async () => {
    const auditor = await staffKey(h, 'auditor');
    const merchant = await newMerchant(h);
    const carrier = await newCarrier(h);

    const list = await h.http
      .get('/v1/admin/audit-events')
      .query({ object_type: 'merchant', object_id: merchant.id })
      .set(bearer(auditor.key));
    expect(list.status).toBe(200);
    expect(list.body.data.map((e: EventItem) => e.action)).toEqual(['merchant.created']);
    const verify = await h.http.get('/v1/admin/audit-events/verify').set(bearer(auditor.key));
    expect(verify.status).toBe(200);
    expect(typeof verify.body.ok).toBe('boolean');

    for (const key of [merchant.key, carrier.key]) {
      for (const path of ['/v1/admin/audit-events', '/v1/admin/audit-events/verify']) {
        const res = await h.http.get(path).set(bearer(key));
        expect(res.status, path).toBe(403);
        expect(res.body.code).toBe('forbidden');
      }
    }
    expect((await h.http.get('/v1/admin/audit-events')).status).toBe(401);
    expect((await h.http.get('/v1/admin/audit-events/verify')).status).toBe(401);
  });
});

describe('audit trail: search', () => {
  it('combines filters and pages newest first without gaps or repeats', async () => {
    const admin = await staffKey(h);
    const auth = bearer(admin.key);
    const m1 = (await h.http.post('/v1/admin/merchants').set(auth).send({ name: 'M1', fee_bps: 1 }))
      .body.id as string;
    expect(
      (await h.http.patch(`/v1/admin/merchants/${m1}`).set(auth).send({ fee_bps: 2 })).status,
    ).toBe(200);
    expect((await h.http.post(`/v1/admin/merchants/${m1}/suspend`).set(auth)).status).toBe(200);
    expect((await h.http.post(`/v1/admin/merchants/${m1}/activate`).set(auth)).status).toBe(200);
    const m2 = (await h.http.post('/v1/admin/merchants').set(auth).send({ name: 'M2', fee_bps: 1 }))
      .body.id as string;
    expect((await h.http.post(`/v1/admin/merchants/${m2}/suspend`).set(auth)).status).toBe(200);
    const code = `src-${randomSuffix()}`;
    const c1 = await h.http.post('/v1/admin/carriers').set(auth).send({
      code,
      name: 'C1',
      currency: 'VND',
      timezone: 'Asia/Ho_Chi_Minh',
      revenue_share_bps: 1,
    });
    expect(c1.status).toBe(201);

    const mine = await events(admin.key, { actor_id: admin.id, limit: 100 });
    expect(mine.map((e) => e.action)).toEqual([
      'carrier.created',
      'merchant.suspended',
      'merchant.created',
      'merchant.activated',
      'merchant.suspended',
      'merchant.updated',
      'merchant.created',
    ]);
    const times = mine.map((e) => e.occurred_at);
    expect([...times].sort().reverse()).toEqual(times);

    const suspensions = await events(admin.key, {
      actor_id: admin.id,
      action: 'merchant.suspended',
    });
    expect(suspensions.map((e) => e.object.id)).toEqual([m2, m1]);
    const m1Events = await events(admin.key, {
      actor_id: admin.id,
      object_type: 'merchant',
      object_id: m1,
    });
    expect(m1Events.map((e) => e.action)).toEqual([
      'merchant.activated',
      'merchant.suspended',
      'merchant.updated',
      'merchant.created',
    ]);
    const m1Activation = await events(admin.key, {
      object_type: 'merchant',
      object_id: m1,
      action: 'merchant.activated',
    });
    expect(m1Activation.map((e) => e.id)).toEqual([mine[3]!.id]);
    expect(await events(admin.key, { object_type: 'carrier', object_id: m1 })).toEqual([]);

    // created_gte is inclusive and created_lt exclusive, at microsecond precision.
    const ascending = [...mine].reverse();
    const window = await events(admin.key, {
      actor_id: admin.id,
      created_gte: ascending[2]!.occurred_at,
      created_lt: ascending[5]!.occurred_at,
    });
    expect(window.map((e) => e.id)).toEqual([ascending[4]!.id, ascending[3]!.id, ascending[2]!.id]);
    const suspendedInWindow = await events(admin.key, {
      actor_id: admin.id,
      action: 'merchant.suspended',
      created_gte: ascending[2]!.occurred_at,
      created_lt: ascending[5]!.occurred_at,
    });
    expect(suspendedInWindow.map((e) => e.id)).toEqual([ascending[2]!.id]);

    for (const limit of [1, 2, 3, 7]) {
      const { ids, pages } = await allPages(admin.key, { actor_id: admin.id }, limit);
      expect(ids, `limit ${limit}`).toEqual(mine.map((e) => e.id));
      expect(new Set(ids).size).toBe(ids.length);
      expect(pages).toBe(Math.ceil(mine.length / limit));
    }
    const pagedSuspensions = await allPages(
      admin.key,
      { actor_id: admin.id, action: 'merchant.suspended' },
      1,
    );
    expect(pagedSuspensions.ids).toEqual(suspensions.map((e) => e.id));
  });

  it('answers 400 for an unknown cursor and an impossible or malformed time', async () => {
    const admin = await staffKey(h);
    const cursor = await h.http
      .get('/v1/admin/audit-events')
      .query({ starting_after: 'evt_00000000000000000000000000' })
      .set(bearer(admin.key));
    expect(cursor.status).toBe(400);
    expect(cursor.body).toMatchObject({ code: 'invalid_cursor', param: 'starting_after' });
    for (const created_gte of ['yesterday', '2025-02-30T00:00:00Z', '2025-01-01T24:00:00Z']) {
      const res = await h.http
        .get('/v1/admin/audit-events')
        .query({ created_gte })
        .set(bearer(admin.key));
      expect(res.status, created_gte).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    const unknown = await h.http
      .get('/v1/admin/audit-events')
      .query({ colour: 'red' })
      .set(bearer(admin.key));
    expect(unknown.status).toBe(400);
  });
});
