import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OPENAPI_PATH } from '../src/paths.js';
import { staffKey } from './helpers/audit.js';
import {
  charge,
  newCarrier,
  newMerchant,
  newSubscriber,
  type CarrierFixture,
  type MerchantFixture,
} from './helpers/factories.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const WRITE_METHODS = ['post', 'put', 'patch', 'delete'] as const;

interface Operation {
  method: string;
  path: string;
}

/** Every operation of the contract, read with a YAML parser. */
function contractOperations(): Operation[] {
  const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as {
    paths: Record<string, Record<string, unknown>>;
  };
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) {
      if (['get', ...WRITE_METHODS].includes(method)) out.push({ method, path });
    }
  }
  return out;
}

interface World {
  carrier: CarrierFixture;
  merchant: MerchantFixture;
  msisdn: string;
  reservedCharge: string;
  settlement: string;
  adjustment: string;
  apiKey: string;
  event: string;
  operator: string;
}

/** Real objects for every path parameter, so a refusal is never just "not found". */
async function world(admin: string): Promise<World> {
  const carrier = await newCarrier(h);
  const merchant = await newMerchant(h);
  const sub = await newSubscriber(h, carrier, { balance: '100000' });
  const reserved = await charge(h, merchant, {
    msisdn: sub.msisdn,
    amount: '1000',
    capture: false,
  });
  expect(reserved.status).toBe(201);
  await h.c.settlements.openStatements();
  const statements = await h.http
    .get('/v1/admin/settlements')
    .query({ carrier_id: carrier.id })
    .set(bearer(admin));
  expect(statements.body.data.length, JSON.stringify(statements.body)).toBeGreaterThan(0);
  const adjustment = await h.http
    .post('/v1/admin/adjustments')
    .set(bearer(admin))
    .set('Idempotency-Key', `a-${randomSuffix()}`)
    .send({
      account: { type: 'merchant_payable', owner_id: merchant.id },
      amount: '10',
      currency: 'VND',
      direction: 'credit',
      reason: 'auditor walk',
    });
  expect(adjustment.status).toBe(201);
  const key = await h.http
    .post('/v1/admin/api-keys')
    .set(bearer(admin))
    .send({ role: 'merchant', owner_id: merchant.id });
  const events = await h.http.get('/v1/events').set(bearer(merchant.key));
  const operator = await h.http
    .post('/v1/admin/operators')
    .set(bearer(admin))
    .send({ email: `walk-${randomSuffix()}@example.test`, name: 'Walk', role: 'auditor' });
  expect(operator.status, operator.text).toBe(201);
  return {
    carrier,
    merchant,
    msisdn: sub.msisdn,
    reservedCharge: reserved.body.id as string,
    settlement: statements.body.data[0].id as string,
    adjustment: adjustment.body.id as string,
    apiKey: key.body.id as string,
    event: events.body.data[0].id as string,
    operator: operator.body.id as string,
  };
}

/** The path with its parameters filled from the world; undefined when one has no object. */
function concrete(path: string, w: World): string | undefined {
  const ids: [RegExp, string][] = [
    [/^\/v1\/admin\/carriers\//, w.carrier.id],
    [/^\/v1\/admin\/merchants\//, w.merchant.id],
    [/^\/v1\/admin\/api-keys\//, w.apiKey],
    [/^\/v1\/(admin|carrier)\/settlements\//, w.settlement],
    [/^\/v1\/admin\/adjustments\//, w.adjustment],
    [/^\/v1\/admin\/operators\//, w.operator],
    [/^\/v1\/charges\//, w.reservedCharge],
    [/^\/v1\/events\//, w.event],
  ];
  let missing = false;
  const filled = path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    if (name === 'msisdn') return encodeURIComponent(w.msisdn);
    const id = ids.find(([pattern]) => pattern.test(path))?.[1];
    if (id === undefined) missing = true;
    return id ?? 'none';
  });
  return missing ? undefined : filled;
}

describe('the auditor role', () => {
  it('cannot write anything: every write route of openapi.yaml answers 403 and nothing changes', async () => {
    const admin = await staffKey(h);
    const auditor = await staffKey(h, 'auditor');
    const w = await world(admin.key);
    // The console's sign-in routes (/v1/session…) take no API key at all: they act on the session
    // cookie only (docs/operators.md#sessions), so an auditor's key gives no access there either.
    const writes = contractOperations().filter(
      (op) =>
        (WRITE_METHODS as readonly string[]).includes(op.method) &&
        !op.path.startsWith('/v1/session'),
    );
    expect(writes.length).toBeGreaterThan(20);
    expect(writes).toContainEqual({ method: 'post', path: '/v1/admin/adjustments/{id}/approve' });
    for (const op of writes) {
      const url = concrete(op.path, w) ?? op.path.replace(/\{\w+\}/g, 'none');
      const req = h.http[op.method as (typeof WRITE_METHODS)[number]](url)
        .set(bearer(auditor.key))
        .set('Idempotency-Key', `aud-${randomSuffix()}`);
      const res = op.method === 'delete' ? await req : await req.send({});
      expect(res.status, `${op.method.toUpperCase()} ${url}: ${res.text}`).toBe(403);
      expect(res.body.code, `${op.method.toUpperCase()} ${url}`).toBe('forbidden');
    }
    const { rows } = await h.c.pool.query<{ audit: number; idem: number }>(
      `SELECT (SELECT count(*)::int FROM audit_events WHERE api_key_id = $1) AS audit,
              (SELECT count(*)::int FROM idempotency_keys WHERE owner_id = $1) AS idem`,
      [auditor.id],
    );
    expect(rows[0]).toEqual({ audit: 0, idem: 0 });
    const read = (path: string) => h.http.get(path).set(bearer(admin.key));
    expect((await read(`/v1/admin/merchants/${w.merchant.id}`)).body.status).toBe('active');
    expect((await read(`/v1/admin/carriers/${w.carrier.id}`)).body.status).toBe('active');
    expect((await read(`/v1/admin/adjustments/${w.adjustment}`)).body.status).toBe(
      'pending_approval',
    );
    expect((await read(`/v1/admin/settlements/${w.settlement}`)).body.status).toBe('open');
    expect((await read(`/v1/admin/api-keys/${w.apiKey}`)).body.revoked_at).toBeNull();
    expect((await read(`/v1/admin/operators/${w.operator}`)).body.status).toBe('active');
    const reserved = await h.http
      .get(`/v1/charges/${w.reservedCharge}`)
      .set(bearer(w.merchant.key));
    expect(reserved.body.status).toBe('reserved');
  });

  it('reads every admin GET route of openapi.yaml', async () => {
    const admin = await staffKey(h);
    const auditor = await staffKey(h, 'auditor');
    const w = await world(admin.key);
    const reads = contractOperations().filter(
      (op) => op.method === 'get' && op.path.startsWith('/v1/admin/'),
    );
    expect(reads).toContainEqual({ method: 'get', path: '/v1/admin/charges' });
    expect(reads).toContainEqual({ method: 'get', path: '/v1/admin/adjustments/{id}' });
    for (const op of reads) {
      const url = concrete(op.path, w);
      expect(url, `no object for ${op.path}`).toBeDefined();
      const res = await h.http.get(url!).set(bearer(auditor.key));
      expect(res.status, `GET ${url}: ${res.text}`).toBe(200);
    }
  });
});

interface AuditRow {
  action: string;
  actor_type: string;
  actor_id: string | null;
  api_key_id: string | null;
  request_id: string | null;
  summary: Record<string, unknown>;
}

async function trail(objectId: string): Promise<AuditRow[]> {
  const { rows } = await h.c.pool.query<AuditRow>(
    `SELECT action, actor_type, actor_id, api_key_id, request_id, summary
       FROM audit_events WHERE object_id = $1 ORDER BY occurred_at, id`,
    [objectId],
  );
  return rows;
}

async function keyIdOf(admin: string, ownerId: string): Promise<string> {
  const res = await h.http
    .get('/v1/admin/api-keys')
    .query({ owner_id: ownerId })
    .set(bearer(admin));
  expect(res.body.data).toHaveLength(1);
  return res.body.data[0].id as string;
}

describe('the audit trail of money movement', () => {
  it('each money-moving endpoint leaves exactly its audit events, with actor, key and request id', async () => {
    const alice = await staffKey(h);
    const bob = await staffKey(h);
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const merchantKeyId = await keyIdOf(alice.key, merchant.id);
    const carrierKeyId = await keyIdOf(alice.key, carrier.id);
    const sub = await newSubscriber(h, carrier);
    const asMerchant = { type: 'merchant', id: merchant.id, api_key_id: merchantKeyId };
    const rid = () => `audit-${randomSuffix()}`;

    const topupRid = rid();
    const topup = await h.http
      .post(`/v1/carrier/subscribers/${sub.msisdn}/topups`)
      .set(bearer(carrier.key))
      .set('Idempotency-Key', `t-${randomSuffix()}`)
      .set('X-Request-Id', topupRid)
      .send({ amount: '100000', currency: 'VND', reference: 'bank-1' });
    expect(topup.status).toBe(201);
    const { rows: subs } = await h.c.pool.query<{ id: string }>(
      'SELECT id FROM subscribers WHERE carrier_id = $1 AND msisdn = $2',
      [carrier.id, sub.msisdn],
    );
    const subscriberTrail = await trail(subs[0]!.id);
    expect(subscriberTrail.map((e) => e.action)).toEqual([
      'subscriber.created',
      'subscriber.topped_up',
    ]);
    expect(subscriberTrail[1]).toMatchObject({
      actor_type: 'carrier',
      actor_id: carrier.id,
      api_key_id: carrierKeyId,
      request_id: topupRid,
      summary: { amount: '100000', currency: 'VND', topup_id: topup.body.id },
    });

    const send = async (
      path: string,
      body?: Record<string, unknown>,
      idem = `m-${randomSuffix()}`,
    ) => {
      const requestId = rid();
      const req = h.http
        .post(path)
        .set(bearer(merchant.key))
        .set('Idempotency-Key', idem)
        .set('X-Request-Id', requestId);
      const res = body ? await req.send(body) : await req;
      return { res, requestId };
    };
    const expectTrail = async (objectId: string, steps: [string, string][]) => {
      const rows = await trail(objectId);
      expect(
        rows.map((e) => e.action),
        objectId,
      ).toEqual(steps.map(([action]) => action));
      rows.forEach((row, i) =>
        expect(row).toMatchObject({
          actor_type: 'merchant',
          actor_id: asMerchant.id,
          api_key_id: asMerchant.api_key_id,
          request_id: steps[i]![1],
        }),
      );
    };

    const oneStep = await send('/v1/charges', {
      currency: 'VND',
      msisdn: sub.msisdn,
      amount: '2000',
      description: 'one step',
    });
    expect(oneStep.res.status).toBe(201);
    await expectTrail(oneStep.res.body.id, [['charge.succeeded', oneStep.requestId]]);

    const denied = await send('/v1/charges', {
      currency: 'VND',
      msisdn: sub.msisdn,
      amount: '9000000',
      description: 'too much',
    });
    expect(denied.res.status).toBe(402);
    await expectTrail(denied.res.body.charge_id, [['charge.denied', denied.requestId]]);

    const reserve = await send('/v1/charges', {
      currency: 'VND',
      msisdn: sub.msisdn,
      amount: '3000',
      description: 'r',
      capture: false,
    });
    expect(reserve.res.status).toBe(201);
    const chargeId = reserve.res.body.id as string;
    await expectTrail(chargeId, [['charge.reserved', reserve.requestId]]);
    const captureKey = `cap-${randomSuffix()}`;
    const capture = await send(`/v1/charges/${chargeId}/capture`, undefined, captureKey);
    expect(capture.res.status).toBe(200);
    const replay = await send(`/v1/charges/${chargeId}/capture`, undefined, captureKey);
    expect(replay.res.headers['idempotent-replayed']).toBe('true');
    await expectTrail(chargeId, [
      ['charge.reserved', reserve.requestId],
      ['charge.captured', capture.requestId],
    ]);

    const toCancel = await send('/v1/charges', {
      currency: 'VND',
      msisdn: sub.msisdn,
      amount: '4000',
      description: 'c',
      capture: false,
    });
    const cancel = await send(`/v1/charges/${toCancel.res.body.id}/cancel`);
    expect(cancel.res.status).toBe(200);
    await expectTrail(toCancel.res.body.id, [
      ['charge.reserved', toCancel.requestId],
      ['charge.cancelled', cancel.requestId],
    ]);

    const refund = await send(`/v1/charges/${oneStep.res.body.id}/refunds`, { amount: '500' });
    expect(refund.res.status).toBe(201);
    await expectTrail(refund.res.body.id, [['refund.succeeded', refund.requestId]]);
    expect((await trail(refund.res.body.id))[0]!.summary).toMatchObject({
      charge_id: oneStep.res.body.id,
      amount: '500',
      currency: 'VND',
    });
    // The refund is the refund's event: the charge's own trail is unchanged.
    await expectTrail(oneStep.res.body.id, [['charge.succeeded', oneStep.requestId]]);

    const createRid = rid();
    const adjustment = await h.http
      .post('/v1/admin/adjustments')
      .set(bearer(alice.key))
      .set('Idempotency-Key', `a-${randomSuffix()}`)
      .set('X-Request-Id', createRid)
      .send({
        account: { type: 'subscriber', owner_id: carrier.id, msisdn: sub.msisdn },
        amount: '700',
        currency: 'VND',
        direction: 'debit',
        reason: 'double top-up',
      });
    expect(adjustment.status).toBe(201);
    const adjId = adjustment.body.id as string;
    const refused = await h.http
      .post(`/v1/admin/adjustments/${adjId}/approve`)
      .set(bearer(alice.key))
      .set('Idempotency-Key', `ok-${randomSuffix()}`);
    expect(refused.status).toBe(403);
    const approveRid = rid();
    const approved = await h.http
      .post(`/v1/admin/adjustments/${adjId}/approve`)
      .set(bearer(bob.key))
      .set('Idempotency-Key', `ok-${randomSuffix()}`)
      .set('X-Request-Id', approveRid);
    expect(approved.status).toBe(200);
    const adjTrail = await trail(adjId);
    expect(adjTrail.map((e) => e.action)).toEqual(['adjustment.created', 'adjustment.approved']);
    expect(adjTrail[0]).toMatchObject({
      actor_type: 'admin',
      actor_id: alice.id,
      api_key_id: alice.id,
      request_id: createRid,
      summary: {
        status: 'pending_approval',
        amount: '700',
        currency: 'VND',
        direction: 'debit',
        account: {
          type: 'subscriber',
          owner_id: carrier.id,
          msisdn: expect.stringMatching(/\*{4}/),
        },
      },
    });
    expect(adjTrail[1]).toMatchObject({
      actor_type: 'admin',
      api_key_id: bob.id,
      request_id: approveRid,
      summary: { status: 'posted', created_by: alice.id },
    });
    // No full MSISDN in any of these records.
    const all = [oneStep.res.body.id, chargeId, refund.res.body.id, adjId, subs[0]!.id];
    const { rows: leaks } = await h.c.pool.query(
      'SELECT id FROM audit_events WHERE object_id = ANY($1) AND summary::text LIKE $2',
      [all, `%${sub.msisdn}%`],
    );
    expect(leaks).toEqual([]);
  });
});
