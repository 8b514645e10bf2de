import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newCarrier, newMerchant } from './helpers/factories.js';
import { bearer, createHarness, newAdminKey, type Harness } from './helpers/harness.js';
import {
  chargeData,
  dispatcherFor,
  emit,
  emitChargeEvent,
  fakeChargeId,
  setEndpoint,
  startReceiver,
  type Receiver,
} from './helpers/webhook-receiver.js';

let h: Harness;
let prod: Harness;
const receivers: Receiver[] = [];

beforeAll(async () => {
  h = await createHarness();
  prod = await createHarness({ env: { SANDBOX: 'false' } });
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await h.close();
  await prod.close();
});

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

async function auditActions(objectId: string): Promise<string[]> {
  const { rows } = await h.c.pool.query<{ action: string }>(
    'SELECT action FROM audit_events WHERE object_id = $1 ORDER BY occurred_at, id',
    [objectId],
  );
  return rows.map((r) => r.action);
}

describe('webhook endpoint', () => {
  it('PUT answers the url, the secret and the status; GET never shows the secret; the secret survives a URL change', async () => {
    const m = await newMerchant(h);
    expect((await h.http.get('/v1/webhook-endpoint').set(bearer(m.key))).status).toBe(404);

    const first = await h.http
      .put('/v1/webhook-endpoint')
      .set(bearer(m.key))
      .send({ url: 'https://shop.example/hooks' });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      url: 'https://shop.example/hooks',
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9_-]{43}$/),
      status: 'enabled',
    });

    const read = await h.http.get('/v1/webhook-endpoint').set(bearer(m.key));
    expect(read.body).toEqual({ url: 'https://shop.example/hooks', status: 'enabled' });
    expect(JSON.stringify(read.body)).not.toContain(first.body.secret);

    const moved = await h.http
      .put('/v1/webhook-endpoint')
      .set(bearer(m.key))
      .send({ url: 'https://shop.example/v2/hooks' });
    expect(moved.body).toEqual({
      url: 'https://shop.example/v2/hooks',
      secret: first.body.secret,
      status: 'enabled',
    });
    expect(await auditActions(m.id)).toEqual([
      'merchant.created',
      'webhook_endpoint.set',
      'webhook_endpoint.set',
    ]);
    const { rows } = await h.c.pool.query(
      `SELECT summary FROM audit_events WHERE object_id = $1 AND action = 'webhook_endpoint.set'`,
      [m.id],
    );
    expect(JSON.stringify(rows)).not.toContain(first.body.secret);
  });

  it('keeps the secret an admin set up with the webhook URL', async () => {
    const m = await newMerchant(h);
    const admin = await newAdminKey(h);
    const patched = await h.http
      .patch(`/v1/admin/merchants/${m.id}`)
      .set(bearer(admin))
      .send({ webhook_url: 'https://shop.example/by-admin' });
    expect(patched.status).toBe(200);
    const { rows } = await h.c.pool.query<{ webhook_secret: string }>(
      'SELECT webhook_secret FROM merchants WHERE id = $1',
      [m.id],
    );
    expect(rows[0]!.webhook_secret).toMatch(/^whsec_/);
    const put = await h.http
      .put('/v1/webhook-endpoint')
      .set(bearer(m.key))
      .send({ url: 'https://shop.example/by-merchant' });
    expect(put.body.secret).toBe(rows[0]!.webhook_secret);
  });

  it('rotate-secret answers a new secret and writes an audit event; without an endpoint it is 404', async () => {
    const m = await newMerchant(h);
    const none = await h.http.post('/v1/webhook-endpoint/rotate-secret').set(bearer(m.key));
    expect(none.status).toBe(404);
    expect(none.body.code).toBe('not_found');

    const secret = await setEndpoint(h, m.key, 'https://shop.example/hooks');
    const rotated = await h.http.post('/v1/webhook-endpoint/rotate-secret').set(bearer(m.key));
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(secret);
    const { rows } = await h.c.pool.query(
      `SELECT webhook_previous_secret = $2 AS kept,
              webhook_previous_secret_until - now() BETWEEN interval '23 hours 59 minutes' AND interval '24 hours' AS grace
         FROM merchants WHERE id = $1`,
      [m.id, secret],
    );
    expect(rows[0]).toEqual({ kept: true, grace: true });
    expect(await auditActions(m.id)).toContain('webhook_endpoint.secret_rotated');
  });

  it('rejects loopback and private URLs with 400 outside sandbox, changing nothing', async () => {
    const m = await newMerchant(prod);
    for (const url of [
      'http://127.0.0.1/',
      'http://10.0.0.1/',
      'http://192.168.1.10:8080/hooks',
      'http://localhost:3000/',
      'http://[::1]/',
    ]) {
      const res = await prod.http.put('/v1/webhook-endpoint').set(bearer(m.key)).send({ url });
      expect(res.status, url).toBe(400);
      expect(res.body).toMatchObject({ code: 'url_not_allowed', param: 'url' });
    }
    expect((await prod.http.get('/v1/webhook-endpoint').set(bearer(m.key))).status).toBe(404);
    const ok = await prod.http
      .put('/v1/webhook-endpoint')
      .set(bearer(m.key))
      .send({ url: 'https://93.184.215.14/hooks' });
    expect(ok.status).toBe(200);
  });

  it('accepts loopback and private URLs in sandbox mode', async () => {
    const m = await newMerchant(h);
    for (const url of ['http://127.0.0.1/', 'http://10.0.0.1/']) {
      const res = await h.http.put('/v1/webhook-endpoint').set(bearer(m.key)).send({ url });
      expect(res.status, url).toBe(200);
    }
  });

  it('rejects malformed URLs, unknown fields and a missing url with 400', async () => {
    const m = await newMerchant(h);
    for (const body of [
      { url: 'not a url' },
      { url: 'ftp://shop.example/' },
      {},
      { url: 'https://a.example/', x: 1 },
    ]) {
      const res = await h.http.put('/v1/webhook-endpoint').set(bearer(m.key)).send(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
  });

  it('outside sandbox, a receiver on a private address is refused at delivery time too', async () => {
    const m = await newMerchant(prod);
    const r = await receiver();
    await setEndpoint(prod, m.key, 'https://shop.example/hooks');
    // As if the merchant's host had come to resolve to a loopback address.
    const d = dispatcherFor(prod, [m.id], { retryScheduleMs: [60_000] });
    try {
      for (const url of [r.url, r.url.replace('127.0.0.1', 'localhost')]) {
        await prod.c.pool.query('UPDATE merchants SET webhook_url = $2 WHERE id = $1', [m.id, url]);
        const chargeId = fakeChargeId();
        const eventId = await emit(
          prod,
          m.id,
          'charge.succeeded',
          chargeId,
          chargeData(chargeId, 'succeeded'),
        );
        expect(await d.runOnce()).toBe(1);
        const res = await prod.http.get(`/v1/events/${eventId}`).set(bearer(m.key));
        expect(res.body.delivery).toMatchObject({ status: 'pending', last_status: null });
        expect(res.body.delivery.last_error).toMatch(/non-public address/);
      }
    } finally {
      d.close();
    }
    expect(r.receptions).toHaveLength(0);
  });

  it('is for merchant keys only', async () => {
    const admin = await newAdminKey(h);
    const carrier = await newCarrier(h);
    for (const key of [admin, carrier.key]) {
      expect((await h.http.get('/v1/webhook-endpoint').set(bearer(key))).status).toBe(403);
      expect((await h.http.get('/v1/events').set(bearer(key))).status).toBe(403);
    }
    expect((await h.http.get('/v1/events')).status).toBe(401);
  });
});

describe('events API', () => {
  it("another merchant's event is 404 for reading and redelivery, and absent from its list", async () => {
    const a = await newMerchant(h);
    const b = await newMerchant(h);
    await setEndpoint(h, b.key, 'https://b.example/hooks');
    const { eventId } = await emitChargeEvent(h, a.id, 'succeeded');

    expect((await h.http.get(`/v1/events/${eventId}`).set(bearer(a.key))).status).toBe(200);
    const read = await h.http.get(`/v1/events/${eventId}`).set(bearer(b.key));
    expect(read.status).toBe(404);
    expect(read.body.code).toBe('not_found');
    const redeliver = await h.http.post(`/v1/events/${eventId}/redeliver`).set(bearer(b.key));
    expect(redeliver.status).toBe(404);
    const list = await h.http.get('/v1/events').set(bearer(b.key));
    expect(list.body).toEqual({ data: [], has_more: false });
  });

  it('lists newest first with cursor pagination and a type filter', async () => {
    const m = await newMerchant(h);
    const chargeId = fakeChargeId();
    const ids: string[] = [];
    for (const [type, status] of [
      ['charge.pending_validation', 'pending_validation'],
      ['charge.succeeded', 'succeeded'],
      ['charge.pending_validation', 'pending_validation'],
      ['charge.denied', 'denied'],
      ['charge.succeeded', 'succeeded'],
    ] as const) {
      ids.push(await emit(h, m.id, type, chargeId, chargeData(chargeId, status)));
    }
    const newestFirst = [...ids].reverse();

    const page1 = await h.http.get('/v1/events?limit=2').set(bearer(m.key));
    expect(page1.status).toBe(200);
    expect(page1.body.has_more).toBe(true);
    expect(page1.body.data.map((e: { id: string }) => e.id)).toEqual(newestFirst.slice(0, 2));
    const page2 = await h.http
      .get(`/v1/events?limit=2&starting_after=${page1.body.data[1].id}`)
      .set(bearer(m.key));
    expect(page2.body.data.map((e: { id: string }) => e.id)).toEqual(newestFirst.slice(2, 4));
    const page3 = await h.http
      .get(`/v1/events?limit=2&starting_after=${page2.body.data[1].id}`)
      .set(bearer(m.key));
    expect(page3.body).toMatchObject({ has_more: false });
    expect(page3.body.data.map((e: { id: string }) => e.id)).toEqual(newestFirst.slice(4));

    const succeeded = await h.http.get('/v1/events?type=charge.succeeded').set(bearer(m.key));
    expect(succeeded.body.data.map((e: { id: string }) => e.id)).toEqual([ids[4], ids[1]]);
    expect(page1.body.data[0]).toMatchObject({
      type: 'charge.succeeded',
      subject: chargeId,
      data: { id: chargeId, status: 'succeeded' },
      delivery: { status: 'skipped', attempts: 0 },
    });
    expect(page1.body.data[0]).not.toHaveProperty('attempt_history');

    const badType = await h.http.get('/v1/events?type=charge.exploded').set(bearer(m.key));
    expect(badType.status).toBe(400);
  });

  it('stores the events of a merchant without a webhook URL as skipped, visible in the API, and does not deliver them', async () => {
    const m = await newMerchant(h);
    const { eventId } = await emitChargeEvent(h, m.id, 'cancelled');
    const d = dispatcherFor(h, [m.id]);
    try {
      expect(await d.runOnce()).toBe(0);
    } finally {
      d.close();
    }
    const res = await h.http.get(`/v1/events/${eventId}`).set(bearer(m.key));
    expect(res.status).toBe(200);
    expect(res.body.delivery).toMatchObject({ status: 'skipped', attempts: 0 });
    expect(res.body.attempt_history).toEqual([]);

    const redeliver = await h.http.post(`/v1/events/${eventId}/redeliver`).set(bearer(m.key));
    expect(redeliver.status).toBe(409);
    expect(redeliver.body.code).toBe('conflict');
  });

  it('redeliver answers 202 and makes a delivered event due again with a fresh schedule, audited', async () => {
    const m = await newMerchant(h);
    const r = await receiver();
    await setEndpoint(h, m.key, r.url);
    const { eventId } = await emitChargeEvent(h, m.id, 'succeeded');
    const d = dispatcherFor(h, [m.id]);
    try {
      expect(await d.runOnce()).toBe(1);
      const res = await h.http.post(`/v1/events/${eventId}/redeliver`).set(bearer(m.key));
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({
        id: eventId,
        delivery: { status: 'pending', attempts: 1 },
        attempt_history: [{ status: 204 }],
      });
      expect(res.body.delivery.next_attempt_at).not.toBeNull();
      expect(await d.runOnce()).toBe(1);
    } finally {
      d.close();
    }
    expect(r.countsById().get(eventId)).toBe(2);
    expect(await auditActions(eventId)).toEqual(['event.redelivery_requested']);
  });

  it('redeliver answers 409 invalid_state while an attempt is in flight', async () => {
    const m = await newMerchant(h);
    await setEndpoint(h, m.key, 'https://shop.example/hooks');
    const { eventId } = await emitChargeEvent(h, m.id, 'succeeded');
    await h.c.pool.query(
      `UPDATE events SET delivery_status = 'delivering', lease_id = 'other',
              next_attempt_at = now() + interval '1 minute' WHERE id = $1`,
      [eventId],
    );
    const res = await h.http.post(`/v1/events/${eventId}/redeliver`).set(bearer(m.key));
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'invalid_state', delivery_status: 'delivering' });
  });
});
