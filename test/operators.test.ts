import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { charge, newCarrier, newMerchant, newSubscriber } from './helpers/factories.js';
import {
  bearer,
  createHarness,
  newAdminKey,
  newOperator,
  randomSuffix,
  type Harness,
} from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

const email = (tag = 'op') => `${tag}-${randomSuffix()}@example.test`;

async function countOperators(where: string, values: unknown[]): Promise<number> {
  const { rows } = await h.c.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM operators WHERE ${where}`,
    values,
  );
  return rows[0]!.n;
}

describe('operators: creation', () => {
  it('creates a person with a one-time set-up link whose token is stored only as its SHA-256', async () => {
    const admin = await newOperator(h, 'admin');
    const address = email('Alice');
    const res = await h.http
      .post('/v1/admin/operators')
      .set(bearer(admin.key))
      .send({ email: address, name: 'Alice Nguyen', role: 'admin' });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      object: 'operator',
      email: address,
      name: 'Alice Nguyen',
      role: 'admin',
      owner_id: null,
      status: 'active',
      bootstrap: false,
      sign_in: { password_set: false, totp_enabled: false },
    });
    expect(res.body.id).toMatch(/^op_/);
    const { token, url, expires_at } = res.body.setup as {
      token: string;
      url: string;
      expires_at: string;
    };
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url).toBe(`http://localhost:8080/console/setup#token=${token}`);
    const ttl = Date.parse(expires_at) - Date.now();
    expect(ttl).toBeGreaterThan(71 * 3_600_000);
    expect(ttl).toBeLessThanOrEqual(72 * 3_600_000);
    expect(res.body.sign_in.setup_expires_at).toBe(expires_at);

    const { rows } = await h.c.pool.query<Record<string, unknown>>(
      'SELECT * FROM operators WHERE id = $1',
      [res.body.id],
    );
    expect(rows[0]!.setup_token_hash).toEqual(createHash('sha256').update(token).digest());
    expect(JSON.stringify(rows[0])).not.toContain(token);

    // Shown once: reading it again never shows the token.
    const read = await h.http.get(`/v1/admin/operators/${res.body.id}`).set(bearer(admin.key));
    expect(read.status).toBe(200);
    expect(read.body.setup).toBeUndefined();
    expect(read.text).not.toContain(token);

    const audit = await h.http
      .get('/v1/admin/audit-events')
      .query({ object_id: res.body.id })
      .set(bearer(admin.key));
    expect(audit.body.data).toHaveLength(1);
    expect(audit.body.data[0]).toMatchObject({
      action: 'operator.created',
      actor: { type: 'admin', api_key_id: admin.keyId, operator_id: admin.id },
      summary: { email: address, role: 'admin', owner_id: null },
    });
    expect(JSON.stringify(audit.body.data[0])).not.toContain(token);
  });

  it('refuses an email already taken in any case (409), also when the same one arrives at once', async () => {
    const admin = await newAdminKey(h);
    const address = email('dup');
    const first = await h.http
      .post('/v1/admin/operators')
      .set(bearer(admin))
      .send({ email: address, name: 'First', role: 'auditor' });
    expect(first.status).toBe(201);
    const again = await h.http
      .post('/v1/admin/operators')
      .set(bearer(admin))
      .send({ email: address.toUpperCase(), name: 'Second', role: 'admin' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'already_exists', param: 'email' });

    const racing = email('race');
    const answers = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        h.http
          .post('/v1/admin/operators')
          .set(bearer(admin))
          .send({
            email: i % 2 ? racing : racing.toUpperCase(),
            name: `Racer ${i}`,
            role: 'admin',
          }),
      ),
    );
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409]);
    expect(await countOperators('lower(email) = lower($1)', [racing])).toBe(1);
  });

  it('carrier and merchant staff need an existing owner; admins and auditors have none', async () => {
    const admin = await newAdminKey(h);
    const merchant = await newMerchant(h);
    const carrier = await newCarrier(h);
    const cases: [Record<string, unknown>, number, string?][] = [
      [{ role: 'merchant' }, 400, 'owner_id'],
      [{ role: 'merchant', owner_id: 'mer_00000000000000000000000000' }, 400, 'owner_id'],
      [{ role: 'carrier', owner_id: merchant.id }, 400, 'owner_id'],
      [{ role: 'admin', owner_id: merchant.id }, 400, 'owner_id'],
      [{ role: 'superuser' }, 400],
      [{ role: 'admin', email: 'not-an-email' }, 400],
      [{ role: 'admin', name: '' }, 400],
      [{ role: 'admin', password: 'x' }, 400],
    ];
    for (const [body, status, param] of cases) {
      const address = email('bad');
      const res = await h.http
        .post('/v1/admin/operators')
        .set(bearer(admin))
        .send({ email: address, name: 'Staff', ...body });
      expect(res.status, JSON.stringify(body)).toBe(status);
      if (param) expect(res.body.param).toBe(param);
      expect(await countOperators('lower(email) = lower($1)', [address])).toBe(0);
    }
    for (const [role, owner] of [
      ['merchant', merchant.id],
      ['carrier', carrier.id],
    ] as const) {
      const res = await h.http
        .post('/v1/admin/operators')
        .set(bearer(admin))
        .send({ email: email(role), name: `${role} staff`, role, owner_id: owner });
      expect(res.status, res.text).toBe(201);
      expect(res.body).toMatchObject({ role, owner_id: owner });
    }
  });
});

describe('operators: reading', () => {
  it('lists newest first with role, status and owner filters and keyset paging; auditors read, never write', async () => {
    const admin = await newAdminKey(h);
    const auditor = await newAdminKey(h, 'auditor');
    const merchant = await newMerchant(h);
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await h.http
        .post('/v1/admin/operators')
        .set(bearer(admin))
        .send({
          email: email('staff'),
          name: `Staff ${i}`,
          role: 'merchant',
          owner_id: merchant.id,
        });
      expect(res.status).toBe(201);
      made.push(res.body.id as string);
    }
    const page1 = await h.http
      .get('/v1/admin/operators')
      .query({ owner_id: merchant.id, limit: 2 })
      .set(bearer(auditor));
    expect(page1.status, page1.text).toBe(200);
    expect(page1.body.data.map((o: { id: string }) => o.id)).toEqual([made[2], made[1]]);
    expect(page1.body.has_more).toBe(true);
    const page2 = await h.http
      .get('/v1/admin/operators')
      .query({ owner_id: merchant.id, limit: 2, starting_after: made[1] })
      .set(bearer(auditor));
    expect(page2.body).toEqual({
      data: [expect.objectContaining({ id: made[0] })],
      has_more: false,
    });

    await h.http.post(`/v1/admin/operators/${made[0]}/suspend`).set(bearer(admin));
    const suspended = await h.http
      .get('/v1/admin/operators')
      .query({ owner_id: merchant.id, status: 'suspended', role: 'merchant' })
      .set(bearer(auditor));
    expect(suspended.body.data.map((o: { id: string }) => o.id)).toEqual([made[0]]);
    const noAdmins = await h.http
      .get('/v1/admin/operators')
      .query({ owner_id: merchant.id, role: 'admin' })
      .set(bearer(auditor));
    expect(noAdmins.body.data).toEqual([]);

    expect((await h.http.get(`/v1/admin/operators/${made[1]}`).set(bearer(auditor))).status).toBe(
      200,
    );
    const badCursor = await h.http
      .get('/v1/admin/operators')
      .query({ starting_after: 'op_00000000000000000000000000' })
      .set(bearer(auditor));
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.code).toBe('invalid_cursor');
    expect(
      (await h.http.get('/v1/admin/operators/op_00000000000000000000000000').set(bearer(auditor)))
        .status,
    ).toBe(404);

    const writes = [
      h.http
        .post('/v1/admin/operators')
        .set(bearer(auditor))
        .send({ email: email(), name: 'x', role: 'admin' }),
      h.http.post(`/v1/admin/operators/${made[1]}/suspend`).set(bearer(auditor)),
      h.http.post(`/v1/admin/operators/${made[0]}/activate`).set(bearer(auditor)),
    ];
    for (const res of await Promise.all(writes)) expect(res.status).toBe(403);
    const after = await h.http.get(`/v1/admin/operators/${made[1]}`).set(bearer(admin));
    expect(after.body.status).toBe('active');
    const merchantKey = await h.http.get('/v1/admin/operators').set(bearer(merchant.key));
    expect(merchantKey.status).toBe(403);
  });
});

describe('operators: suspension', () => {
  it("a suspended operator's keys stop authenticating and they get no new key; activation restores them", async () => {
    const admin = await newOperator(h, 'admin');
    const person = await newOperator(h, 'auditor');
    expect((await h.http.get('/v1/admin/operators').set(bearer(person.key))).status).toBe(200);

    const suspend = await h.http
      .post(`/v1/admin/operators/${person.id}/suspend`)
      .set(bearer(admin.key));
    expect(suspend.status).toBe(200);
    expect(suspend.body.status).toBe('suspended');
    const refused = await h.http.get('/v1/admin/operators').set(bearer(person.key));
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe('unauthenticated');

    const twice = await h.http
      .post(`/v1/admin/operators/${person.id}/suspend`)
      .set(bearer(admin.key));
    expect(twice.status).toBe(200);
    const noKey = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin.key))
      .send({ role: 'auditor', operator_id: person.id });
    expect(noKey.status).toBe(409);
    expect(noKey.body).toMatchObject({ code: 'invalid_state', current_status: 'suspended' });

    const activate = await h.http
      .post(`/v1/admin/operators/${person.id}/activate`)
      .set(bearer(admin.key));
    expect(activate.body.status).toBe('active');
    expect((await h.http.get('/v1/admin/operators').set(bearer(person.key))).status).toBe(200);

    const events = await h.http
      .get('/v1/admin/audit-events')
      .query({ object_id: person.id, object_type: 'operator' })
      .set(bearer(admin.key));
    // One suspension and one activation: the repeated suspension changed nothing.
    expect(events.body.data.map((e: { action: string }) => e.action)).toEqual([
      'operator.activated',
      'operator.suspended',
      'operator.created',
    ]);
    expect(events.body.data[0].actor.operator_id).toBe(admin.id);
  });

  it('suspension ends the operator’s console sessions', async () => {
    const admin = await newOperator(h, 'admin');
    const person = await newOperator(h, 'admin');
    const sessionId = `ses_${randomSuffix()}`;
    await h.c.pool.query(
      `INSERT INTO operator_sessions (id, token_hash, operator_id, stage, csrf_token_hash, expires_at)
       VALUES ($1, $2, $3, 'active', $4, now() + interval '12 hours')`,
      [sessionId, Buffer.from(randomSuffix()), person.id, Buffer.from(randomSuffix())],
    );
    const res = await h.http
      .post(`/v1/admin/operators/${person.id}/suspend`)
      .set(bearer(admin.key));
    expect(res.status).toBe(200);
    const { rows } = await h.c.pool.query<{ ended_reason: string | null; ended: boolean }>(
      'SELECT ended_reason, ended_at IS NOT NULL AS ended FROM operator_sessions WHERE id = $1',
      [sessionId],
    );
    expect(rows[0]).toEqual({ ended_reason: 'suspended', ended: true });
  });

  it('an admin cannot suspend themselves', async () => {
    const admin = await newOperator(h, 'admin');
    const res = await h.http.post(`/v1/admin/operators/${admin.id}/suspend`).set(bearer(admin.key));
    expect(res.status).toBe(403);
    const read = await h.http.get(`/v1/admin/operators/${admin.id}`).set(bearer(admin.key));
    expect(read.body.status).toBe('active');
  });
});

describe('personal and machine keys', () => {
  it('a personal key has its operator’s role and owner; a machine key names no operator', async () => {
    const admin = await newAdminKey(h);
    const merchant = await newMerchant(h);
    const other = await newMerchant(h);
    const staff = await h.http
      .post('/v1/admin/operators')
      .set(bearer(admin))
      .send({ email: email('shop'), name: 'Shop clerk', role: 'merchant', owner_id: merchant.id });
    expect(staff.status).toBe(201);
    const opId = staff.body.id as string;

    const personal = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin))
      .send({ role: 'merchant', operator_id: opId });
    expect(personal.status, personal.text).toBe(201);
    expect(personal.body).toMatchObject({
      role: 'merchant',
      owner_id: merchant.id,
      operator_id: opId,
    });
    const mismatches: [Record<string, unknown>, string][] = [
      [{ role: 'carrier', operator_id: opId }, 'role'],
      [{ role: 'merchant', operator_id: opId, owner_id: other.id }, 'owner_id'],
      [{ role: 'merchant', operator_id: 'op_00000000000000000000000000' }, 'operator_id'],
    ];
    for (const [body, param] of mismatches) {
      const res = await h.http.post('/v1/admin/api-keys').set(bearer(admin)).send(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.param).toBe(param);
    }
    const { rows } = await h.c.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM api_keys WHERE operator_id = $1',
      [opId],
    );
    expect(rows[0]!.n).toBe(1);

    const machine = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin))
      .send({ role: 'merchant', owner_id: merchant.id });
    expect(machine.body.operator_id).toBeNull();
    const listed = await h.http
      .get('/v1/admin/api-keys')
      .query({ operator_id: opId })
      .set(bearer(admin));
    expect(listed.body.data.map((k: { id: string }) => k.id)).toEqual([personal.body.id]);
    const one = await h.http.get(`/v1/admin/api-keys/${machine.body.id}`).set(bearer(admin));
    expect(one.body.operator_id).toBeNull();
  });

  it('audit events name the person behind a personal key, and only then; actor_operator= filters by it', async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const clerk = await newOperator(h, 'merchant', merchant.id);
    const byPerson = await charge(
      h,
      { ...merchant, key: clerk.key },
      {
        msisdn: sub.msisdn,
        amount: '1000',
      },
    );
    expect(byPerson.status, byPerson.text).toBe(201);
    const byMachine = await charge(h, merchant, { msisdn: sub.msisdn, amount: '1000' });
    expect(byMachine.status).toBe(201);

    const admin = await newAdminKey(h);
    const mine = await h.http
      .get('/v1/admin/audit-events')
      .query({ actor_operator: clerk.id })
      .set(bearer(admin));
    expect(mine.status).toBe(200);
    expect(mine.body.data).toHaveLength(1);
    expect(mine.body.data[0]).toMatchObject({
      action: 'charge.succeeded',
      object: { type: 'charge', id: byPerson.body.id },
      actor: { type: 'merchant', id: merchant.id, api_key_id: clerk.keyId, operator_id: clerk.id },
    });
    const machineEvents = await h.http
      .get('/v1/admin/audit-events')
      .query({ object_id: byMachine.body.id })
      .set(bearer(admin));
    expect(machineEvents.body.data[0].actor.operator_id).toBeNull();
  });
});
