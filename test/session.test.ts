import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bearer,
  createHarness,
  newAdminKey,
  randomSuffix,
  type Harness,
} from './helpers/harness.js';
import { createPasswordHasher } from '../src/modules/sessions/sessions-password.js';
import { charge, newCarrier, newMerchant, newSubscriber } from './helpers/factories.js';
import {
  browser,
  codeFor,
  newOperator,
  newSetupToken,
  setCookieOf,
  signIn,
} from './helpers/operators.js';

let h: Harness;
beforeAll(async () => {
  // A cheaper scrypt than production's (test/session-password.test.ts covers that one) on a shared
  // machine; the proxy is trusted so each test comes from its own address.
  h = await createHarness({ env: { TRUST_PROXY: 'true', PASSWORD_SCRYPT_LOG2_N: '14' } });
});
afterAll(() => h.close());

async function auditOf(objectId: string) {
  const { rows } = await h.c.pool.query<{
    action: string;
    actor_operator: string | null;
    actor_type: string;
    api_key_id: string | null;
    summary: Record<string, unknown>;
  }>(
    `SELECT action, actor_operator, actor_type, api_key_id, summary FROM audit_events
      WHERE object_id = $1 ORDER BY occurred_at, id`,
    [objectId],
  );
  return rows;
}

describe('password set-up from the one-time link', () => {
  it('sets the password once; the operator then signs in with it', async () => {
    const token = newSetupToken();
    const op = await newOperator(h, { role: 'merchant', password: null, setupToken: token });
    const password = `a long pass phrase ${randomSuffix()}`;
    const res = await h.http.post('/v1/session/setup').send({ token, password });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toEqual({ object: 'operator', operator_id: op.id, email: op.email });
    expect(res.headers['cache-control']).toBe('no-store');

    const { rows } = await h.c.pool.query(
      'SELECT password_hash, setup_token_hash FROM operators WHERE id = $1',
      [op.id],
    );
    expect(rows[0].setup_token_hash).toBeNull();
    expect(rows[0].password_hash).toMatch(
      /^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/,
    );

    const again = await h.http.post('/v1/session/setup').send({ token, password: `${password}!` });
    expect(again.status).toBe(400);
    expect(again.body.code).toBe('setup_token_invalid');

    const b = browser(h);
    const session = await signIn(b, { ...op, password });
    expect(session.stage).toBe('active');
    const audit = await auditOf(op.id);
    expect(audit.map((a) => a.action)).toEqual(['operator.password_set']);
    expect(audit[0]!.actor_operator).toBe(op.id);
  });

  it('rehashes a password made with other scrypt parameters at the next sign-in', async () => {
    const op = await newOperator(h, { role: 'merchant' });
    const older = await createPasswordHasher({ ln: 15, r: 8, p: 1 }).hash(op.password);
    await h.c.pool.query('UPDATE operators SET password_hash = $2 WHERE id = $1', [op.id, older]);
    await signIn(browser(h), op);
    const { rows } = await h.c.pool.query('SELECT password_hash FROM operators WHERE id = $1', [
      op.id,
    ]);
    expect(rows[0].password_hash).toMatch(/^\$scrypt\$ln=14,r=8,p=1\$/);
    expect(rows[0].password_hash).not.toBe(older);
    // The new hash verifies the same password.
    await signIn(browser(h), op);
  });

  it('refuses passwords against the policy and keeps the link usable', async () => {
    const token = newSetupToken();
    const op = await newOperator(h, { role: 'admin', password: null, setupToken: token });
    const local = op.email.split('@')[0]!;
    const refused = [
      'short pass',
      'x'.repeat(129),
      op.email,
      `my ${local.toUpperCase()} pass`,
      'aaaaaaaaaaaaaaaa',
      'abcdefghijklmnop',
      'Password1234',
    ];
    for (const password of refused) {
      const res = await h.http.post('/v1/session/setup').send({ token, password });
      expect(res.status, password).toBe(422);
      expect(res.body.code).toBe('password_rejected');
      expect(res.body.param).toBe('password');
    }
    // A control character is refused before the policy, by the rule for every string (SPEC §10).
    const control = await h.http
      .post('/v1/session/setup')
      .send({ token, password: 'tab\u0001character!' });
    expect(control.status).toBe(400);
    expect(control.body).toMatchObject({ code: 'invalid_string', param: 'password' });
    // 12 code points of four bytes each: length is counted in characters.
    const emoji = '🔐'.repeat(6) + '🗝️'.repeat(3);
    expect((await h.http.post('/v1/session/setup').send({ token, password: emoji })).status).toBe(
      200,
    );
  });

  it('refuses an expired or unknown link, saying nothing of which', async () => {
    const token = newSetupToken();
    await newOperator(h, { password: null, setupToken: token, setupExpiresInSeconds: -1 });
    const expired = await h.http
      .post('/v1/session/setup')
      .send({ token, password: 'a fine password 123' });
    const unknown = await h.http
      .post('/v1/session/setup')
      .send({ token: newSetupToken(), password: 'a fine password 123' });
    expect(expired.status).toBe(400);
    expect(unknown.status).toBe(400);
    expect(expired.body.detail).toBe(unknown.body.detail);
  });
});

describe('sign-in of merchant staff without an authenticator', () => {
  it('is active at once; the cookie calls the merchant API as the operator; sign-out ends it', async () => {
    const merchant = await newMerchant(h);
    const op = await newOperator(h, { role: 'merchant', ownerId: merchant.id });
    const b = browser(h);
    const res = await b
      .post('/v1/session')
      .send({ email: op.email.toUpperCase(), password: op.password });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      object: 'session',
      stage: 'active',
      operator_id: op.id,
      email: op.email,
      name: op.name,
      role: 'merchant',
      owner_id: merchant.id,
      totp_enabled: false,
      totp_required: false,
    });
    const csrf = res.body.csrf_token as string;
    expect(csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const me = await b.get('/v1/session');
    expect(me.status).toBe(200);
    expect(me.body.csrf_token).toBe(csrf);
    expect(me.body.id).toBe(res.body.id);
    expect(Date.parse(me.body.expires_at) - Date.now()).toBeGreaterThan(11.9 * 3600_000);
    expect(Date.parse(me.body.idle_expires_at) - Date.now()).toBeLessThanOrEqual(30 * 60_000);

    expect((await b.get('/v1/balance')).status).toBe(200);
    const put = await b
      .put('/v1/webhook-endpoint')
      .set('X-CSRF-Token', csrf)
      .send({ url: 'http://127.0.0.1:9/hooks' });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    // Least privilege holds for people too: merchant staff are not admins.
    expect((await b.get('/v1/admin/carriers')).status).toBe(403);

    const { rows } = await h.c.pool.query<{
      actor_operator: string;
      api_key_id: string | null;
      actor_id: string;
    }>(
      `SELECT actor_operator, api_key_id, actor_id FROM audit_events
        WHERE action LIKE 'webhook_endpoint.%' AND actor_id = $1`,
      [merchant.id],
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows[0]).toEqual({ actor_operator: op.id, api_key_id: null, actor_id: merchant.id });

    const out = await b.delete('/v1/session').set('X-CSRF-Token', csrf);
    expect(out.status).toBe(204);
    expect(setCookieOf(out)).toMatch(
      /^dcb_session=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Strict$/,
    );
    expect((await b.get('/v1/session')).status).toBe(401);
    expect((await auditOf(res.body.id as string)).map((a) => a.action)).toEqual([
      'session.signed_in',
      'session.signed_out',
    ]);
  });

  it('answers a wrong email and a wrong password alike', async () => {
    const op = await newOperator(h, { role: 'carrier' });
    const wrongPassword = await browser(h)
      .post('/v1/session')
      .send({ email: op.email, password: `${op.password}x` });
    const wrongEmail = await browser(h)
      .post('/v1/session')
      .send({ email: `nobody-${randomSuffix()}@example.test`, password: op.password });
    const unset = await newOperator(h, { role: 'carrier', password: null });
    const noPassword = await browser(h)
      .post('/v1/session')
      .send({ email: unset.email, password: 'whatever it is 1' });
    for (const res of [wrongPassword, wrongEmail, noPassword]) {
      expect(res.status).toBe(401);
      expect(setCookieOf(res)).toBeUndefined();
      const { request_id: _id, ...shape } = res.body as Record<string, unknown>;
      expect(shape).toEqual({
        type: 'urn:dcb-gateway:problem:invalid_credentials',
        title: 'Sign-in failed',
        status: 401,
        detail: 'The email or password is wrong.',
        code: 'invalid_credentials',
      });
    }
    const failed = await auditOf(op.id);
    expect(failed).toMatchObject([
      {
        action: 'session.sign_in_failed',
        actor_operator: op.id,
        summary: { reason: 'wrong_password' },
      },
    ]);
    expect(String(failed[0]!.summary.email)).toMatch(/^o\*\*\*@example\.test$/);
  });
});

describe('sign-in of an admin: TOTP is required', () => {
  it('enrols at first sign-in, confirms with the first code, and only then reaches the API', async () => {
    const op = await newOperator(h, { role: 'admin' });
    const b = browser(h);
    const first = await signIn(b, op);
    expect(first).toMatchObject({
      stage: 'second_factor',
      totp_enabled: false,
      totp_required: true,
    });
    const waiting = await b.get('/v1/admin/carriers');
    expect(waiting.status).toBe(401);
    expect(waiting.body.code).toBe('second_factor_required');
    expect((await b.get('/v1/session')).body.stage).toBe('second_factor');

    const enrol = await b.post('/v1/session/totp/enrol').set('X-CSRF-Token', first.csrf_token);
    expect(enrol.status, JSON.stringify(enrol.body)).toBe(200);
    const secret = enrol.body.secret as string;
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(enrol.body.otpauth_url).toBe(
      `otpauth://totp/DCB%20gateway:${encodeURIComponent(op.email)}?secret=${secret}&issuer=DCB%20gateway`,
    );

    const wrong = await b
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', first.csrf_token)
      .send({ code: (Number(await codeFor(secret)) ^ 1).toString().padStart(6, '0') });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('second_factor_invalid');

    const passed = await b
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', first.csrf_token)
      .send({ code: await codeFor(secret) });
    expect(passed.status, JSON.stringify(passed.body)).toBe(200);
    expect(passed.body).toMatchObject({ stage: 'active', totp_enabled: true, id: first.id });
    // A new cookie and a new CSRF token once the session is active.
    expect(setCookieOf(passed)).toBeDefined();
    expect(passed.body.csrf_token).not.toBe(first.csrf_token);

    expect((await b.get('/v1/admin/carriers')).status).toBe(200);
    const code = `car-${randomSuffix()}`;
    const created = await b
      .post('/v1/admin/carriers')
      .set('X-CSRF-Token', passed.body.csrf_token as string)
      .send({
        code,
        name: code,
        currency: 'VND',
        timezone: 'Asia/Ho_Chi_Minh',
        revenue_share_bps: 3000,
      });
    expect(created.status, JSON.stringify(created.body)).toBe(201);

    expect((await auditOf(op.id)).map((a) => a.action)).toEqual([
      'operator.totp_enrolment_started',
      'operator.totp_enrolled',
    ]);
    const sessionAudit = await auditOf(first.id);
    expect(sessionAudit.map((a) => a.action)).toEqual([
      'session.password_accepted',
      'session.second_factor_failed',
      'session.signed_in',
    ]);
    expect(sessionAudit.every((a) => a.actor_operator === op.id && a.actor_type === 'admin')).toBe(
      true,
    );
    const carrierAudit = await auditOf(created.body.id as string);
    expect(carrierAudit[0]).toMatchObject({ actor_operator: op.id, api_key_id: null });

    // Enrolled: enrolment is closed, and the next sign-in asks for a code (a later one).
    const again = browser(h);
    const second = await signIn(again, op);
    expect(second).toMatchObject({ stage: 'second_factor', totp_enabled: true });
    const reenrol = await again
      .post('/v1/session/totp/enrol')
      .set('X-CSRF-Token', second.csrf_token);
    expect(reenrol.status).toBe(409);
  });

  it('offers enrolment to staff without asking for it, and then asks for a code', async () => {
    const op = await newOperator(h, { role: 'carrier' });
    const b = browser(h);
    const session = await signIn(b, op);
    expect(session.stage).toBe('active');
    const enrol = await b.post('/v1/session/totp/enrol').set('X-CSRF-Token', session.csrf_token);
    const confirmed = await b
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', session.csrf_token)
      .send({ code: await codeFor(enrol.body.secret as string) });
    expect(confirmed.status, JSON.stringify(confirmed.body)).toBe(200);
    expect(confirmed.body).toMatchObject({ stage: 'active', totp_enabled: true });
    // The session was active already: it keeps its cookie and CSRF token.
    expect(setCookieOf(confirmed)).toBeUndefined();
    expect(confirmed.body.csrf_token).toBe(session.csrf_token);
    const next = await signIn(browser(h), op);
    expect(next.stage).toBe('second_factor');
  });
});

describe('the session cookie', () => {
  it('is HttpOnly, SameSite=Strict, Path=/, lives 12 h, and only its hash is stored', async () => {
    const op = await newOperator(h, { role: 'merchant' });
    const res = await browser(h)
      .post('/v1/session')
      .send({ email: op.email, password: op.password });
    const cookie = setCookieOf(res)!;
    expect(cookie).toMatch(
      /^dcb_session=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/; HttpOnly; SameSite=Strict$/,
    );
    const token = /^dcb_session=([^;]+)/.exec(cookie)![1]!;
    const { rows } = await h.c.pool.query<{ token_hash: Buffer; csrf_token_hash: Buffer }>(
      'SELECT token_hash, csrf_token_hash FROM operator_sessions WHERE id = $1',
      [res.body.id],
    );
    expect(rows[0]!.token_hash.equals(createHash('sha256').update(token).digest())).toBe(true);
    expect(
      rows[0]!.csrf_token_hash.equals(
        createHash('sha256')
          .update(res.body.csrf_token as string)
          .digest(),
      ),
    ).toBe(true);
  });

  it('is Secure and __Host- prefixed outside sandbox', async () => {
    const live = await createHarness({ env: { SANDBOX: 'false' } });
    try {
      const op = await newOperator(live, { role: 'carrier' });
      const res = await live.http
        .post('/v1/session')
        .set('X-Forwarded-For', '10.9.9.9')
        .send({ email: op.email, password: op.password });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(setCookieOf(res)).toMatch(
        /^__Host-dcb_session=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/; HttpOnly; Secure; SameSite=Strict$/,
      );
    } finally {
      await live.close();
    }
  });
});

describe('session lifetime', () => {
  async function activeSession(role: 'merchant' | 'carrier' = 'carrier') {
    const op = await newOperator(h, { role });
    const b = browser(h);
    const session = await signIn(b, op);
    return { op, b, session };
  }

  it('ends after 30 minutes without a request: 401 session_expired, cookie cleared', async () => {
    const { b, session } = await activeSession();
    await h.c.pool.query(
      `UPDATE operator_sessions SET last_seen_at = now() - interval '31 minutes' WHERE id = $1`,
      [session.id],
    );
    const res = await b.get('/v1/carrier/settlements');
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'session_expired', reason: 'idle' });
    expect(setCookieOf(res)).toMatch(/^dcb_session=; Max-Age=0;/);
    const { rows } = await h.c.pool.query(
      'SELECT ended_reason FROM operator_sessions WHERE id = $1',
      [session.id],
    );
    expect(rows[0].ended_reason).toBe('idle');
  });

  it('ends 12 hours after sign-in however busy', async () => {
    const { b, session } = await activeSession();
    await h.c.pool.query(
      `UPDATE operator_sessions SET expires_at = now() - interval '1 second' WHERE id = $1`,
      [session.id],
    );
    const res = await b.get('/v1/session');
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'session_expired', reason: 'expired' });
    expect(setCookieOf(res)).toMatch(/^dcb_session=; Max-Age=0;/);
  });

  it('writes last_seen_at at most once a minute', async () => {
    const { b, session } = await activeSession();
    const seen = async () =>
      (
        await h.c.pool.query<{ t: string }>(
          `SELECT last_seen_at::text AS t FROM operator_sessions WHERE id = $1`,
          [session.id],
        )
      ).rows[0]!.t;
    await h.c.pool.query(
      `UPDATE operator_sessions SET last_seen_at = now() - interval '5 minutes' WHERE id = $1`,
      [session.id],
    );
    const stale = await seen();
    expect((await b.get('/v1/carrier/settlements')).status).toBe(200);
    const touched = await seen();
    expect(touched > stale).toBe(true);
    for (let i = 0; i < 3; i++) expect((await b.get('/v1/carrier/settlements')).status).toBe(200);
    expect(await seen()).toBe(touched);
  });

  it('honours shorter configured timeouts', async () => {
    const quick = await createHarness({
      env: {
        TRUST_PROXY: 'true',
        SESSION_IDLE_TIMEOUT_SECONDS: '60',
        SESSION_TOUCH_INTERVAL_SECONDS: '1',
      },
    });
    try {
      const op = await newOperator(quick, { role: 'merchant' });
      const b = browser(quick);
      const session = await signIn(b, op);
      expect(
        Date.parse((await b.get('/v1/session')).body.idle_expires_at) - Date.now(),
      ).toBeLessThanOrEqual(60_000);
      await quick.c.pool.query(
        `UPDATE operator_sessions SET last_seen_at = now() - interval '61 seconds' WHERE id = $1`,
        [session.id],
      );
      expect((await b.get('/v1/balance')).body.reason).toBe('idle');
    } finally {
      await quick.close();
    }
  });

  it('is refused once its operator is suspended', async () => {
    const { op, b } = await activeSession('merchant');
    await h.c.pool.query(`UPDATE operators SET status = 'suspended' WHERE id = $1`, [op.id]);
    const res = await b.get('/v1/balance');
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'session_expired', reason: 'suspended' });
    // And a suspended operator cannot sign in again, with the same answer as a wrong password.
    const again = await browser(h)
      .post('/v1/session')
      .send({ email: op.email, password: op.password });
    expect(again.status).toBe(401);
    expect(again.body.code).toBe('invalid_credentials');
  });

  it('a new password ends the sessions signed in with the old one', async () => {
    const { op, b } = await activeSession('merchant');
    const token = newSetupToken();
    await h.c.pool.query(
      `UPDATE operators SET setup_token_hash = $2, setup_expires_at = now() + interval '1 hour' WHERE id = $1`,
      [op.id, createHash('sha256').update(token).digest()],
    );
    const set = await h.http
      .post('/v1/session/setup')
      .send({ token, password: `new pass phrase ${randomSuffix()}` });
    expect(set.status).toBe(200);
    expect((await b.get('/v1/session')).body).toMatchObject({
      code: 'session_expired',
      reason: 'password_set',
    });
  });
});

describe('API keys are unaffected by sessions', () => {
  it('a bearer key wins over a cookie and needs no CSRF token', async () => {
    const op = await newOperator(h, { role: 'merchant' });
    const b = browser(h);
    await signIn(b, op);
    const admin = await newAdminKey(h);
    const code = `car-${randomSuffix()}`;
    const res = await b.post('/v1/admin/carriers').set(bearer(admin)).send({
      code,
      name: code,
      currency: 'VND',
      timezone: 'Asia/Ho_Chi_Minh',
      revenue_share_bps: 3000,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  });

  it("staff share their tenant's idempotency scope: a key used by the session replays for the API key", async () => {
    const carrier = await newCarrier(h);
    const merchant = await newMerchant(h);
    const sub = await newSubscriber(h, carrier, { balance: '100000' });
    const op = await newOperator(h, { role: 'merchant', ownerId: merchant.id });
    const b = browser(h);
    const session = await signIn(b, op);
    const key = `staff-${randomSuffix()}`;
    const body = {
      msisdn: sub.msisdn,
      amount: '5000',
      currency: 'VND',
      description: 'test purchase',
    };
    const first = await b
      .post('/v1/charges')
      .set('X-CSRF-Token', session.csrf_token)
      .set('Idempotency-Key', key)
      .send(body);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const replay = await charge(h, merchant, body, key);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body.id).toBe(first.body.id);
  });
});
