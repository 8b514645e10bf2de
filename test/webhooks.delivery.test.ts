import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTransaction } from '../src/db/transaction.js';
import { leaseEvents, lockDueEvents } from '../src/modules/events/events-repo.js';
import { signWebhook, verifyWebhook } from '../src/modules/events/webhook-signature.js';
import { newMerchant } from './helpers/factories.js';
import { bearer, createHarness, type Harness } from './helpers/harness.js';
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

type Verify = (secret: string, header: string, rawBody: string) => boolean;

let h: Harness;
let docsVerify: Verify;
let docsDir: string;
const receivers: Receiver[] = [];

/** The verification snippet of docs/webhooks.md, loaded as a merchant would paste it. */
async function loadDocsSnippet(): Promise<Verify> {
  const md = readFileSync(path.resolve(import.meta.dirname, '../docs/webhooks.md'), 'utf8');
  const block = [...md.matchAll(/```js\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .find((code) => code.includes('export function verifyWebhook'));
  expect(block, 'docs/webhooks.md has the verifyWebhook snippet').toBeDefined();
  docsDir = mkdtempSync(path.join(os.tmpdir(), 'dcb-webhook-docs-'));
  const file = path.join(docsDir, 'verify.mjs');
  writeFileSync(file, block!);
  const mod = (await import(pathToFileURL(file).href)) as { verifyWebhook: Verify };
  return mod.verifyWebhook;
}

async function receiver(respond?: Parameters<typeof startReceiver>[0]): Promise<Receiver> {
  const r = await startReceiver(respond);
  receivers.push(r);
  return r;
}

/** A merchant whose endpoint points at a fresh receiver. */
async function merchantWithReceiver(respond?: Parameters<typeof startReceiver>[0]) {
  const m = await newMerchant(h);
  const r = await receiver(respond);
  const secret = await setEndpoint(h, m.key, r.url);
  return { m, r, secret };
}

async function eventRow(id: string) {
  const { rows } = await h.c.pool.query('SELECT * FROM events WHERE id = $1', [id]);
  return rows[0];
}

beforeAll(async () => {
  h = await createHarness();
  docsVerify = await loadDocsSnippet();
});
afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  rmSync(docsDir, { recursive: true, force: true });
  await h.close();
});

describe('webhook signatures', () => {
  it('the docs snippet and the module accept exactly the signatures made with the secret', () => {
    const body = '{"id":"evt_x"}';
    const header = signWebhook(['whsec_new', 'whsec_old'], body);
    for (const verify of [docsVerify, verifyWebhook]) {
      expect(verify('whsec_new', header, body)).toBe(true);
      expect(verify('whsec_old', header, body)).toBe(true);
      expect(verify('whsec_other', header, body)).toBe(false);
      expect(verify('whsec_new', header, `${body} `)).toBe(false);
      const stale = signWebhook(['whsec_new'], body, Math.floor(Date.now() / 1000) - 301);
      expect(verify('whsec_new', stale, body)).toBe(false);
      expect(verify('whsec_new', 'v1=abc', body)).toBe(false);
    }
  });
});

describe('webhook delivery', () => {
  it('a receiver that fails twice then succeeds gets the event three times, each validly signed, and the event shows 3 attempts', async () => {
    const { m, r, secret } = await merchantWithReceiver((_rec, n) => (n < 2 ? 500 : 200));
    const chargeId = fakeChargeId();
    const data = chargeData(chargeId, 'succeeded');
    const eventId = await emit(h, m.id, 'charge.succeeded', chargeId, data);
    const d = dispatcherFor(h, [m.id]);
    try {
      expect(await d.runOnce()).toBe(1);
      expect(await d.runOnce()).toBe(1);
      expect(await d.runOnce()).toBe(1);
      expect(await d.runOnce()).toBe(0);
    } finally {
      d.close();
    }

    expect(r.receptions).toHaveLength(3);
    for (const rec of r.receptions) {
      expect(rec.headers['content-type']).toBe('application/cloudevents+json');
      const header = rec.headers['webhook-signature'] as string;
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(docsVerify(secret, header, rec.rawBody)).toBe(true);
      expect(verifyWebhook(secret, header, rec.rawBody)).toBe(true);
      expect(rec.body).toEqual({
        specversion: '1.0',
        id: eventId,
        source: `/dcb-gateway/merchants/${m.id}`,
        type: 'com.dcbgateway.charge.succeeded',
        subject: chargeId,
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        datacontenttype: 'application/json',
        sequence: expect.stringMatching(/^\d{20}$/),
        data,
      });
    }

    const res = await h.http.get(`/v1/events/${eventId}`).set(bearer(m.key));
    expect(res.status).toBe(200);
    expect(res.body.delivery).toMatchObject({
      status: 'delivered',
      attempts: 3,
      last_status: 200,
      last_error: null,
      next_attempt_at: null,
    });
    expect(res.body.delivery.delivered_at).not.toBeNull();
    expect(res.body.attempt_history.map((a: { status: number }) => a.status)).toEqual([
      500, 500, 200,
    ]);
    expect(res.body.attempt_history[0]).toMatchObject({ url: r.url, error: 'HTTP 500' });
    for (const a of res.body.attempt_history) expect(a.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('events for one charge carry the data of each state and a sequence that orders them, even when a retry arrives late', async () => {
    // The first delivery of the first event fails, so it arrives after the later events.
    const { m, r } = await merchantWithReceiver((_rec, n) => (n === 0 ? 503 : 204));
    const chargeId = fakeChargeId();
    const states = [
      ['charge.pending_validation', 'pending_validation'],
      ['charge.reserved', 'reserved'],
      ['charge.succeeded', 'succeeded'],
    ] as const;
    const ids: string[] = [];
    for (const [type, status] of states) {
      ids.push(await emit(h, m.id, type, chargeId, chargeData(chargeId, status)));
    }
    const refundId = `re_${chargeId.slice(3)}`;
    ids.push(
      await emit(h, m.id, 'refund.succeeded', refundId, {
        id: refundId,
        object: 'refund',
        charge_id: chargeId,
        amount: '5000',
        currency: 'VND',
      }),
    );
    const d = dispatcherFor(h, [m.id], { batchSize: 1 });
    try {
      while ((await d.runOnce()) > 0);
    } finally {
      d.close();
    }

    // Arrival order: the first event (refused), the three later ones, the first event's retry.
    expect(r.receptions.map((x) => x.body.id)).toEqual([ids[0], ids[1], ids[2], ids[3], ids[0]]);
    const delivered = r.receptions.slice(1);
    const bySequence = [...delivered].sort((a, b) =>
      a.body.sequence.localeCompare(b.body.sequence),
    );
    expect(bySequence.map((x) => x.body.id)).toEqual(ids);
    expect(bySequence.slice(0, 3).map((x) => x.body.data.status)).toEqual([
      'pending_validation',
      'reserved',
      'succeeded',
    ]);
    expect(bySequence[3]!.body).toMatchObject({
      type: 'com.dcbgateway.refund.succeeded',
      data: { charge_id: chargeId },
    });

    const list = await h.http.get('/v1/events').set(bearer(m.key));
    expect(list.body.data.map((e: { id: string }) => e.id)).toEqual([...ids].reverse());
    const sequences = list.body.data.map((e: { sequence: string }) => BigInt(e.sequence));
    for (let i = 1; i < sequences.length; i++) expect(sequences[i - 1] > sequences[i]).toBe(true);
  });

  it('loses nothing across a crash: an event committed while no dispatcher runs is delivered when one starts', async () => {
    const { m, r } = await merchantWithReceiver();
    const { eventId } = await emitChargeEvent(h, m.id, 'denied');
    expect((await eventRow(eventId)).delivery_status).toBe('pending');

    const d = dispatcherFor(h, [m.id]);
    try {
      expect(await d.runOnce()).toBe(1);
    } finally {
      d.close();
    }
    expect(r.countsById().get(eventId)).toBe(1);
    expect((await eventRow(eventId)).delivery_status).toBe('delivered');
  });

  it('a dispatcher that crashed after claiming holds the event only until its lease ends; then it is delivered once', async () => {
    const { m, r } = await merchantWithReceiver();
    const { eventId } = await emitChargeEvent(h, m.id, 'reserved');
    // The claim a dispatcher makes before POSTing, with nothing after it.
    await withTransaction(h.c.pool, async (tx) => {
      const due = await lockDueEvents(tx, { limit: 10, merchantIds: [m.id] });
      expect(due.map((e) => e.id)).toEqual([eventId]);
      await leaseEvents(tx, [eventId], 'crashed-dispatcher', 60_000);
    });

    const d = dispatcherFor(h, [m.id]);
    try {
      expect(await d.runOnce()).toBe(0);
      expect(r.receptions).toHaveLength(0);
      await h.c.pool.query(
        `UPDATE events SET next_attempt_at = now() - interval '1 second' WHERE id = $1`,
        [eventId],
      );
      expect(await d.runOnce()).toBe(1);
    } finally {
      d.close();
    }
    expect(r.countsById().get(eventId)).toBe(1);
    const row = await eventRow(eventId);
    expect(row).toMatchObject({ delivery_status: 'delivered', attempts: 1, lease_id: null });
  });

  it('two dispatchers on two pools running concurrently send each event exactly once', async () => {
    const h2 = await createHarness();
    const { m, r } = await merchantWithReceiver();
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const chargeId = fakeChargeId();
      ids.push(
        await emit(h, m.id, 'charge.succeeded', chargeId, chargeData(chargeId, 'succeeded')),
      );
    }
    const d1 = dispatcherFor(h, [m.id], { batchSize: 4 });
    const d2 = dispatcherFor(h2, [m.id], { batchSize: 4 });
    let handled1 = 0;
    let handled2 = 0;
    try {
      for (;;) {
        const [a, b] = await Promise.all([d1.runOnce(), d2.runOnce()]);
        handled1 += a;
        handled2 += b;
        if (a + b === 0) break;
      }
    } finally {
      d1.close();
      d2.close();
      await h2.close();
    }
    expect(handled1 + handled2).toBe(40);
    expect(handled1).toBeGreaterThan(0);
    expect(handled2).toBeGreaterThan(0);
    const counts = r.countsById();
    expect(counts.size).toBe(40);
    for (const id of ids) expect(counts.get(id), id).toBe(1);
    const { rows } = await h.c.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM event_delivery_attempts WHERE event_id = ANY ($1)',
      [ids],
    );
    expect(rows[0]!.n).toBe(40);
  });

  it('a receiver that never answers does not block: the attempt times out, is recorded, and other merchants are served', async () => {
    const slow = await merchantWithReceiver(() => 'hang');
    const fast = await merchantWithReceiver();
    const slowCharge = fakeChargeId();
    const fastCharge = fakeChargeId();
    const slowEvent = await emit(
      h,
      slow.m.id,
      'charge.succeeded',
      slowCharge,
      chargeData(slowCharge, 'succeeded'),
    );
    const fastEvent = await emit(
      h,
      fast.m.id,
      'charge.succeeded',
      fastCharge,
      chargeData(fastCharge, 'succeeded'),
    );
    const d = dispatcherFor(h, [slow.m.id, fast.m.id], {
      timeoutMs: 300,
      retryScheduleMs: [60_000],
    });
    const started = Date.now();
    try {
      expect(await d.runOnce()).toBe(2);
    } finally {
      d.close();
    }
    expect(Date.now() - started).toBeLessThan(3000);
    expect(slow.r.receptions).toHaveLength(1);
    expect(fast.r.countsById().get(fastEvent)).toBe(1);

    const res = await h.http.get(`/v1/events/${slowEvent}`).set(bearer(slow.m.key));
    expect(res.body.delivery).toMatchObject({ status: 'pending', attempts: 1, last_status: null });
    expect(res.body.delivery.last_error).toMatch(/^timeout/);
    expect(res.body.delivery.next_attempt_at).not.toBeNull();
    expect(res.body.attempt_history).toHaveLength(1);
    expect(res.body.attempt_history[0]).toMatchObject({ status: null });
    expect(res.body.attempt_history[0].latency_ms).toBeGreaterThanOrEqual(250);
    expect(res.body.attempt_history[0].error).toMatch(/timeout/);
  });

  it('retries for at least 24 hours after the schedule runs out, then marks the event failed', async () => {
    const { m, r } = await merchantWithReceiver(() => 500);
    const { eventId } = await emitChargeEvent(h, m.id, 'succeeded');
    const d = dispatcherFor(h, [m.id], { retryScheduleMs: [0] });
    try {
      expect(await d.runOnce()).toBe(1); // first attempt; the schedule's one retry is due at once
      expect(await d.runOnce()).toBe(1); // schedule exhausted: the last try waits for the 24 h mark
      expect(await d.runOnce()).toBe(0);
      const { rows } = await h.c.pool.query<{ hours: number }>(
        `SELECT extract(epoch FROM next_attempt_at - retry_started_at) / 3600 AS hours
           FROM events WHERE id = $1`,
        [eventId],
      );
      expect(Number(rows[0]!.hours)).toBeGreaterThan(23.99);
      expect(Number(rows[0]!.hours)).toBeLessThan(24.01);

      // A day later.
      await h.c.pool.query(
        `UPDATE events SET next_attempt_at = now(), retry_started_at = retry_started_at - interval '24 hours'
          WHERE id = $1`,
        [eventId],
      );
      expect(await d.runOnce()).toBe(1);
      expect(await d.runOnce()).toBe(0);
    } finally {
      d.close();
    }
    expect(r.receptions).toHaveLength(3);
    expect(await eventRow(eventId)).toMatchObject({
      delivery_status: 'failed',
      attempts: 3,
      next_attempt_at: null,
      last_status: 500,
    });
  });

  it('spreads retries with jitter below the scheduled delay', async () => {
    const { m } = await merchantWithReceiver(() => 500);
    const { eventId } = await emitChargeEvent(h, m.id, 'succeeded');
    const d = dispatcherFor(h, [m.id], { retryScheduleMs: [600_000], random: () => 0.5 });
    try {
      expect(await d.runOnce()).toBe(1);
    } finally {
      d.close();
    }
    const { rows } = await h.c.pool.query<{ s: number }>(
      'SELECT extract(epoch FROM next_attempt_at - last_attempt_at) AS s FROM events WHERE id = $1',
      [eventId],
    );
    expect(Number(rows[0]!.s)).toBeGreaterThan(290);
    expect(Number(rows[0]!.s)).toBeLessThan(310);
  });

  it('a 410 disables the endpoint: later events are skipped until the URL is set again', async () => {
    const { m, r } = await merchantWithReceiver(() => 410);
    const { eventId: goneEvent } = await emitChargeEvent(h, m.id, 'succeeded');
    const d = dispatcherFor(h, [m.id]);
    try {
      expect(await d.runOnce()).toBe(1);
      const endpoint = await h.http.get('/v1/webhook-endpoint').set(bearer(m.key));
      expect(endpoint.body).toEqual({ url: r.url, status: 'disabled' });
      expect(await eventRow(goneEvent)).toMatchObject({
        delivery_status: 'failed',
        last_status: 410,
      });
      const audit = await h.c.pool.query(
        `SELECT actor_type, actor_id FROM audit_events
          WHERE action = 'webhook_endpoint.disabled' AND object_id = $1`,
        [m.id],
      );
      expect(audit.rows).toEqual([{ actor_type: 'system', actor_id: 'webhook-dispatcher' }]);

      const { eventId: skipped } = await emitChargeEvent(h, m.id, 'reserved');
      // Born skipped: the dispatcher has nothing to do.
      expect(await eventRow(skipped)).toMatchObject({ delivery_status: 'skipped', attempts: 0 });
      expect(await d.runOnce()).toBe(0);
      expect(r.receptions).toHaveLength(1);

      r.respond = () => 200;
      await setEndpoint(h, m.key, r.url);
      const { eventId: later } = await emitChargeEvent(h, m.id, 'succeeded');
      expect(await d.runOnce()).toBe(1);
      expect(r.countsById().get(later)).toBe(1);
      expect(r.countsById().has(skipped)).toBe(false);

      const redeliver = await h.http.post(`/v1/events/${skipped}/redeliver`).set(bearer(m.key));
      expect(redeliver.status).toBe(202);
      expect(redeliver.body.delivery.status).toBe('pending');
      expect(await d.runOnce()).toBe(1);
      expect(r.countsById().get(skipped)).toBe(1);
    } finally {
      d.close();
    }
  });

  it('skips an event whose endpoint was disabled after the event was written', async () => {
    const { m, r } = await merchantWithReceiver();
    const { eventId: queued } = await emitChargeEvent(h, m.id, 'succeeded');
    expect(await eventRow(queued)).toMatchObject({ delivery_status: 'pending' });
    await h.c.pool.query(`UPDATE merchants SET webhook_status = 'disabled' WHERE id = $1`, [m.id]);
    const d = dispatcherFor(h, [m.id]);
    try {
      expect(await d.runOnce()).toBe(1);
      expect(await eventRow(queued)).toMatchObject({ delivery_status: 'skipped', attempts: 0 });
      expect(r.receptions).toHaveLength(0);
    } finally {
      d.close();
    }
  });

  it('after a secret rotation both secrets sign for the grace period, then only the new one', async () => {
    const { m, r, secret: oldSecret } = await merchantWithReceiver();
    const rotated = await h.http.post('/v1/webhook-endpoint/rotate-secret').set(bearer(m.key));
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.secret as string;
    expect(rotated.body).toEqual({ url: r.url, secret: newSecret, status: 'enabled' });
    expect(newSecret).not.toBe(oldSecret);

    const d = dispatcherFor(h, [m.id]);
    try {
      const a = fakeChargeId();
      await emit(h, m.id, 'charge.succeeded', a, chargeData(a, 'succeeded'));
      expect(await d.runOnce()).toBe(1);
      const during = r.receptions[0]!;
      const header = during.headers['webhook-signature'] as string;
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
      expect(docsVerify(newSecret, header, during.rawBody)).toBe(true);
      expect(docsVerify(oldSecret, header, during.rawBody)).toBe(true);
      // The new secret signs first.
      expect(
        verifyWebhook(newSecret, header.split(',').slice(0, 2).join(','), during.rawBody),
      ).toBe(true);

      await h.c.pool.query(
        `UPDATE merchants SET webhook_previous_secret_until = now() - interval '1 second' WHERE id = $1`,
        [m.id],
      );
      const b = fakeChargeId();
      await emit(h, m.id, 'charge.succeeded', b, chargeData(b, 'succeeded'));
      expect(await d.runOnce()).toBe(1);
      const after = r.receptions[1]!;
      const afterHeader = after.headers['webhook-signature'] as string;
      expect(afterHeader).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(docsVerify(newSecret, afterHeader, after.rawBody)).toBe(true);
      expect(docsVerify(oldSecret, afterHeader, after.rawBody)).toBe(false);
    } finally {
      d.close();
    }
  });

  it('counts deliveries by outcome in the metrics', async () => {
    const { m } = await merchantWithReceiver((_rec, n) => (n === 0 ? 500 : 200));
    const chargeId = fakeChargeId();
    await emit(h, m.id, 'charge.succeeded', chargeId, chargeData(chargeId, 'succeeded'));
    const value = async (outcome: string) =>
      (await h.c.metrics.webhookDeliveries.get()).values.find((v) => v.labels.outcome === outcome)
        ?.value ?? 0;
    const before = { retry: await value('retry'), delivered: await value('delivered') };
    const d = dispatcherFor(h, [m.id]);
    try {
      await d.runOnce();
      await d.runOnce();
    } finally {
      d.close();
    }
    expect((await value('retry')) - before.retry).toBe(1);
    expect((await value('delivered')) - before.delivered).toBe(1);
    const text = await h.c.metrics.registry.metrics();
    expect(text).toContain('webhook_deliveries_total{outcome="delivered"}');
  });
});
