import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, randomSuffix, type Harness } from './helpers/harness.js';
import {
  browser,
  codeFor,
  newOperator,
  newSetupToken,
  randomAddress,
  signIn,
  signInActive,
  type OperatorFixture,
} from './helpers/operators.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness({ env: { TRUST_PROXY: 'true', PASSWORD_SCRYPT_LOG2_N: '14' } });
});
afterAll(() => h.close());

const carrierBody = (code: string) => ({
  code,
  name: code,
  currency: 'VND',
  timezone: 'Asia/Ho_Chi_Minh',
  revenue_share_bps: 3000,
});

async function carrierExists(code: string): Promise<boolean> {
  const { rowCount } = await h.c.pool.query('SELECT 1 FROM carriers WHERE code = $1', [code]);
  return rowCount === 1;
}

function signInFrom(address: string, email: string, password: string) {
  return h.http.post('/v1/session').set('X-Forwarded-For', address).send({ email, password });
}

describe('CSRF: a state change with the cookie but without the session token changes nothing', () => {
  let admin: OperatorFixture;
  let b: ReturnType<typeof browser>;
  let csrf: string;
  beforeAll(async () => {
    admin = await newOperator(h, { role: 'admin', totp: true });
    b = browser(h);
    csrf = (await signInActive(b, admin)).csrf_token;
  });

  it('refuses a POST with no token, a wrong token, or another session’s token', async () => {
    const other = browser(h);
    const otherOp = await newOperator(h, { role: 'admin', totp: true });
    const otherCsrf = (await signInActive(other, otherOp)).csrf_token;
    const attempts: [string, string | undefined][] = [
      ['none', undefined],
      ['empty', ''],
      ['wrong', 'A'.repeat(43)],
      ['another session', otherCsrf],
    ];
    for (const [what, token] of attempts) {
      const code = `car-${randomSuffix()}`;
      const req = b.post('/v1/admin/carriers');
      if (token !== undefined) req.set('X-CSRF-Token', token);
      const res = await req.send(carrierBody(code));
      expect(res.status, what).toBe(403);
      expect(res.body.code, what).toBe('csrf_failed');
      expect(await carrierExists(code), what).toBe(false);
    }
    // The same request with the token goes through.
    const code = `car-${randomSuffix()}`;
    const ok = await b.post('/v1/admin/carriers').set('X-CSRF-Token', csrf).send(carrierBody(code));
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect(await carrierExists(code)).toBe(true);
  });

  it('guards PUT, PATCH and DELETE too, but not reads', async () => {
    expect((await b.get('/v1/admin/carriers')).status).toBe(200);
    for (const method of ['put', 'patch', 'delete'] as const) {
      const res = await b[method]('/v1/admin/api-keys/key_nonexistent').send({});
      expect(res.status, method).toBe(403);
      expect(res.body.code).toBe('csrf_failed');
    }
  });

  it('a forged sign-out does not end the session', async () => {
    const res = await b.delete('/v1/session');
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('csrf_failed');
    expect((await b.get('/v1/session')).status).toBe(200);
  });

  it('a forged enrolment or second factor is refused before anything is read or changed', async () => {
    const op = await newOperator(h, { role: 'auditor' });
    const victim = browser(h);
    await signIn(victim, op);
    const enrol = await victim.post('/v1/session/totp/enrol');
    expect(enrol.status).toBe(403);
    const { rows } = await h.c.pool.query('SELECT totp_secret FROM operators WHERE id = $1', [
      op.id,
    ]);
    expect(rows[0].totp_secret).toBeNull();
    const code = await victim.post('/v1/session/second-factor').send({ code: '123456' });
    expect(code.status).toBe(403);
  });
});

describe('the session token', () => {
  it('a stolen CSRF token without the cookie is nothing; an unknown cookie is session_expired', async () => {
    const op = await newOperator(h, { role: 'carrier' });
    const b = browser(h);
    const session = await signIn(b, op);
    const bare = await h.http
      .get('/v1/carrier/settlements')
      .set('X-CSRF-Token', session.csrf_token);
    expect(bare.status).toBe(401);
    expect(bare.body.code).toBe('unauthenticated');
    const forged = await h.http
      .get('/v1/carrier/settlements')
      .set('Cookie', `dcb_session=${'B'.repeat(43)}`);
    expect(forged.status).toBe(401);
    expect(forged.body).toMatchObject({ code: 'session_expired', reason: 'unknown' });
  });

  it('guessing cookies meets the failed-authentication brake of the address', async () => {
    const strict = await createHarness({
      env: { TRUST_PROXY: 'true', RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: '3' },
    });
    try {
      const address = randomAddress();
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const guess = `${randomSuffix()}${'A'.repeat(33)}`;
        const res = await strict.http
          .get('/v1/balance')
          .set('X-Forwarded-For', address)
          .set('Cookie', `dcb_session=${guess}`);
        statuses.push(res.status);
      }
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
    } finally {
      await strict.close();
    }
  });

  it('a signed-out token stays dead even when replayed by hand', async () => {
    const op = await newOperator(h, { role: 'carrier' });
    const res = await signInFrom(randomAddress(), op.email, op.password);
    const cookie = /^(dcb_session=[^;]+)/.exec(
      (res.headers['set-cookie'] as unknown as string[])[0]!,
    )![1]!;
    const out = await h.http
      .delete('/v1/session')
      .set('Cookie', cookie)
      .set('X-CSRF-Token', res.body.csrf_token as string);
    expect(out.status).toBe(204);
    const replay = await h.http.get('/v1/carrier/settlements').set('Cookie', cookie);
    expect(replay.status).toBe(401);
    expect(replay.body).toMatchObject({ code: 'session_expired', reason: 'signed_out' });
  });
});

describe('the sign-in brake', () => {
  it('per email: of 10 concurrent wrong passwords from 10 addresses exactly 5 are tried', async () => {
    const op = await newOperator(h, { role: 'merchant' });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => signInFrom(randomAddress(), op.email, 'not the password!')),
    );
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    for (const limited of answers.filter((r) => r.status === 429)) {
      expect(limited.body.code).toBe('rate_limited');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(limited.headers['ratelimit-policy']).toBe('"sign-in-email";q=5;w=900');
    }
    const { rows } = await h.c.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'session.sign_in_failed' AND object_id = $1`,
      [op.id],
    );
    expect(rows[0]!.n).toBe(5);
    // Braked: even the right password waits (that is the brake), and it costs no hash work.
    expect((await signInFrom(randomAddress(), op.email, op.password)).status).toBe(429);
    // Another email from another address is untouched.
    const other = await newOperator(h, { role: 'merchant' });
    expect((await signInFrom(randomAddress(), other.email, other.password)).status).toBe(201);
  });

  it('per address: of 25 concurrent wrong sign-ins for 25 emails exactly 20 are tried', async () => {
    const address = randomAddress();
    const answers = await Promise.all(
      Array.from({ length: 25 }, () =>
        signInFrom(address, `nobody-${randomSuffix()}@example.test`, 'not the password!'),
      ),
    );
    const count = (status: number) => answers.filter((r) => r.status === status).length;
    expect([count(401), count(429)]).toEqual([20, 5]);
    expect(answers.find((r) => r.status === 429)!.headers['ratelimit-policy']).toBe(
      '"sign-in-address";q=20;w=900',
    );
    // The braked address is refused even for a real operator; another address is not.
    const op = await newOperator(h, { role: 'carrier' });
    expect((await signInFrom(address, op.email, op.password)).status).toBe(429);
    expect((await signInFrom(randomAddress(), op.email, op.password)).status).toBe(201);
  });

  it('counts failures only: many correct sign-ins in a row are never braked', async () => {
    const op = await newOperator(h, { role: 'merchant' });
    const address = randomAddress();
    for (let i = 0; i < 5; i++) {
      expect((await signInFrom(address, op.email, op.password)).status).toBe(201);
    }
    // Four failures and a success leave four: the fifth failure is still tried.
    for (let i = 0; i < 4; i++)
      expect((await signInFrom(address, op.email, 'wrong one!')).status).toBe(401);
    expect((await signInFrom(address, op.email, op.password)).status).toBe(201);
    expect((await signInFrom(address, op.email, 'wrong one!')).status).toBe(401);
    expect((await signInFrom(address, op.email, 'wrong one!')).status).toBe(429);
  });

  it('a braked email never refuses another email signing in from another address', async () => {
    const victim = await newOperator(h, { role: 'merchant' });
    const attacker = randomAddress();
    await Promise.all(
      Array.from({ length: 8 }, () => signInFrom(attacker, victim.email, 'guess guess guess')),
    );
    const others = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const op = await newOperator(h, { role: 'merchant' });
        return signInFrom(randomAddress(), op.email, op.password);
      }),
    );
    expect(others.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
  });

  it('per operator for second factors: after 5 wrong codes the sixth is not tried', async () => {
    const op = await newOperator(h, { role: 'admin', totp: true });
    const b = browser(h);
    const { csrf_token } = await signIn(b, op);
    const right = await codeFor(op.totpSecret!);
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        b.post('/v1/session/second-factor').set('X-CSRF-Token', csrf_token).send({ code: wrong }),
      ),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([401, 401, 401, 401, 401, 429]);
    const limited = await b
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', csrf_token)
      .send({ code: right });
    expect(limited.status).toBe(429);
    expect((await b.get('/v1/session')).body.stage).toBe('second_factor');
  });
});

describe('hostile sign-in input', () => {
  it('a NUL or control character in the email is a 400 naming it, not a 500', async () => {
    for (const email of ['a\u0000b@example.test', 'a\nb@example.test', 'a\u007fb@example.test']) {
      const res = await signInFrom(randomAddress(), email, 'a password here');
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.param).toBe('email');
    }
  });

  it('a malformed or oversized cookie is an ended session, not an error', async () => {
    for (const cookie of ['dcb_session=%00%zz', `dcb_session=${'x'.repeat(4000)}`, 'dcb_session']) {
      const res = await h.http.get('/v1/balance').set('Cookie', cookie);
      expect(res.status, cookie).toBe(401);
      expect(['session_expired', 'unauthenticated']).toContain(res.body.code);
    }
  });
});

describe('a fuzzer over the session operations', () => {
  const printable = fc.stringMatching(/^[!-~]{0,80}$/);
  const body = fc.oneof(
    fc.jsonValue(),
    fc.record({ email: fc.string(), password: fc.string({ unit: 'binary' }) }),
    fc.record({ token: printable, password: fc.string({ unit: 'binary', maxLength: 200 }) }),
    fc.record({ code: fc.string({ maxLength: 10 }) }),
    fc.dictionary(fc.string(), fc.jsonValue()),
  );
  const ops = [
    ['post', '/v1/session'],
    ['post', '/v1/session/setup'],
    ['post', '/v1/session/second-factor'],
    ['post', '/v1/session/totp/enrol'],
    ['get', '/v1/session'],
    ['delete', '/v1/session'],
  ] as const;

  for (const [method, path] of ops) {
    it(`${method.toUpperCase()} ${path}: never a 5xx, every error problem+json`, async () => {
      const op = await newOperator(h, { role: 'merchant' });
      const live = await signInFrom(randomAddress(), op.email, op.password);
      const realCookie = /^(dcb_session=[^;]+)/.exec(
        (live.headers['set-cookie'] as unknown as string[])[0]!,
      )![1]!;
      await fc.assert(
        fc.asyncProperty(
          body,
          fc.oneof(
            fc.constant(realCookie),
            printable.map((v) => `dcb_session=${v}`),
            fc.constant(''),
          ),
          fc.oneof(fc.constant(live.body.csrf_token as string), printable),
          async (payload, cookie, csrf) => {
            let req = h.http[method](path).set('X-Forwarded-For', randomAddress());
            if (cookie) req = req.set('Cookie', cookie);
            if (csrf) req = req.set('X-CSRF-Token', csrf);
            const res =
              method === 'get'
                ? await req
                : await req.set('Content-Type', 'application/json').send(JSON.stringify(payload));
            expect(res.status, `${res.status} ${res.text.slice(0, 300)}`).toBeLessThan(500);
            if (res.status >= 400) {
              expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
              expect(typeof res.body.code).toBe('string');
            }
          },
        ),
        { numRuns: 25 },
      );
    });
  }
});

describe('the sign-in brake without Redis', () => {
  it('holds in process with the same counts', async () => {
    const local = await createHarness({
      redis: false,
      env: { TRUST_PROXY: 'true', PASSWORD_SCRYPT_LOG2_N: '14' },
    });
    try {
      const op = await newOperator(local, { role: 'merchant' });
      const answers = await Promise.all(
        Array.from({ length: 7 }, () =>
          local.http
            .post('/v1/session')
            .set('X-Forwarded-For', randomAddress())
            .send({ email: op.email, password: 'not the password!' }),
        ),
      );
      expect(answers.map((r) => r.status).sort()).toEqual([401, 401, 401, 401, 401, 429, 429]);
    } finally {
      await local.close();
    }
  });
});

describe('one-time things are used once', () => {
  it('a set-up link used 10 times at once sets exactly one password', async () => {
    const token = newSetupToken();
    const op = await newOperator(h, { role: 'carrier', password: null, setupToken: token });
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        h.http.post('/v1/session/setup').send({ token, password: `pass phrase number ${i}` }),
      ),
    );
    const won = answers.filter((r) => r.status === 200);
    expect(won).toHaveLength(1);
    expect(
      answers.filter((r) => r.status === 400 && r.body.code === 'setup_token_invalid'),
    ).toHaveLength(9);
    const { rows } = await h.c.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'operator.password_set' AND object_id = $1`,
      [op.id],
    );
    expect(rows[0]!.n).toBe(1);
    // The password set is the winner's.
    const index = answers.indexOf(won[0]!);
    expect(
      (await signInFrom(randomAddress(), op.email, `pass phrase number ${index}`)).status,
    ).toBe(201);
  });

  it('a TOTP code is accepted once: replayed by another session it is refused', async () => {
    const op = await newOperator(h, { role: 'auditor', totp: true });
    const first = browser(h);
    const second = browser(h);
    const a = await signIn(first, op);
    const b = await signIn(second, op);
    const code = await codeFor(op.totpSecret!);
    const ok = await first
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', a.csrf_token)
      .send({ code });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const replay = await second
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', b.csrf_token)
      .send({ code });
    expect(replay.status).toBe(401);
    expect(replay.body.code).toBe('second_factor_invalid');
    const { rows } = await h.c.pool.query(
      `SELECT summary FROM audit_events WHERE action = 'session.second_factor_failed' AND object_id = $1`,
      [b.id],
    );
    expect(rows.map((r) => r.summary)).toEqual([{ reason: 'replayed' }]);
    // An earlier step than the one used is refused too; a later one is accepted.
    const earlier = await codeFor(op.totpSecret!, -1);
    const stale = await second
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', b.csrf_token)
      .send({ code: earlier });
    expect(stale.status).toBe(401);
    const later = await second
      .post('/v1/session/second-factor')
      .set('X-CSRF-Token', b.csrf_token)
      .send({ code: await codeFor(op.totpSecret!, 1) });
    expect(later.status).toBe(200);
  });

  it('one code sent by 5 sessions at once activates exactly one (5: the second-factor brake)', async () => {
    const op = await newOperator(h, { role: 'admin', totp: true });
    // Signed in one after another: concurrent sign-ins of one email would meet its brake, which
    // takes each attempt's unit before the password is checked.
    const sessions: { b: ReturnType<typeof browser>; csrf: string }[] = [];
    for (let i = 0; i < 5; i++) {
      const b = browser(h);
      sessions.push({ b, csrf: (await signIn(b, op)).csrf_token });
    }
    const code = await codeFor(op.totpSecret!);
    const answers = await Promise.all(
      sessions.map(({ b, csrf }) =>
        b.post('/v1/session/second-factor').set('X-CSRF-Token', csrf).send({ code }),
      ),
    );
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 401)).toHaveLength(4);
    const { rows } = await h.c.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM operator_sessions WHERE operator_id = $1 AND stage = 'active'`,
      [op.id],
    );
    expect(rows[0]!.n).toBe(1);
  });
});

describe('failed sign-ins in the audit trail', () => {
  it('keep neither the password nor the email of an unknown sign-in, only its mask', async () => {
    const email = `ghost-${randomSuffix()}@example.test`;
    await signInFrom(randomAddress(), email, 'some secret words');
    const { rows } = await h.c.pool.query<{ object_id: string; summary: { email: string } }>(
      `SELECT object_id, summary FROM audit_events WHERE action = 'session.sign_in_failed'
        AND summary->>'email' = $1`,
      [`g***@example.test`],
    );
    expect(rows.length).toBeGreaterThan(0);
    const dump = JSON.stringify(rows);
    expect(dump).not.toContain(email);
    expect(dump).not.toContain('some secret words');
  });
});
