import express from 'express';
import supertest from 'supertest';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Container } from '../src/container.js';
import { authenticate } from '../src/http/auth.js';
import { hashApiKey } from '../src/modules/api-keys/api-keys-service.js';
import { errorHandler } from '../src/http/problem.js';
import { requestId } from '../src/http/request-id.js';
import {
  enforceChargeVelocity,
  perKeyRateLimit,
} from '../src/modules/rate-limit/rate-limit-http.js';
import { clientAddressBucket } from '../src/modules/rate-limit/rate-limit-service.js';
import { newMerchant } from './helpers/factories.js';
import {
  bearer,
  createHarness,
  newAdminKey,
  randomSuffix,
  type Harness,
  type HarnessOptions,
} from './helpers/harness.js';

const open: Harness[] = [];
async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const h = await createHarness({ productionRateLimits: true, ...options });
  open.push(h);
  return h;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});
afterAll(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const LIST = '/v1/admin/merchants?limit=1';

function randomIp(): string {
  const byte = () => 1 + Math.floor(Math.random() * 254);
  return `10.${byte()}.${byte()}.${byte()}`;
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}'));
    if (wanted.every((w) => inside.split(',').includes(w))) return Number(line.split(' ').pop());
  }
  return 0;
}

/**
 * The shape the charges route takes: authenticate, per-key limit, then the per-subscriber
 * velocity brake before any money logic. Answers 201 when the attempt may go on.
 */
function chargeAttemptApp(c: Container): express.Express {
  const app = express();
  app.use(requestId());
  app.use(express.json());
  app.use('/v1', authenticate(c.apiKeys, c.authBrake));
  app.use('/v1', perKeyRateLimit(c.rateLimits));
  app.post('/v1/charge-attempts', async (req, res) => {
    await enforceChargeVelocity(c.rateLimits, res, (req.body as { msisdn: string }).msisdn);
    res.status(201).json({ ok: true });
  });
  app.use(errorHandler(c.logger));
  return app;
}

describe('per-API-key limit', () => {
  it('announces the default policy (50/s, burst 100) on every authenticated response', async () => {
    const h = await harness();
    const admin = await newAdminKey(h);
    const first = await h.http.get(LIST).set(bearer(admin));
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"per-key";q=100;w=2');
    expect(first.headers['ratelimit']).toBe('"per-key";r=99;t=1');
    const second = await h.http.get(LIST).set(bearer(admin));
    expect(second.headers['ratelimit']).toMatch(/^"per-key";r=(98|99);t=1$/);
    // 403 and 404 answers after authentication count too, and say so.
    const forbidden = await h.http.post('/v1/admin/merchants').set(bearer(admin)).send({});
    expect(forbidden.headers['ratelimit-policy']).toBe('"per-key";q=100;w=2');
  });

  it('with 10/s and burst 10, exactly 10 of 30 concurrent requests pass; the rest get 429 with Retry-After, and a retry after it passes', async () => {
    // GCRA gives a unit back every 100 ms, so the 30 decisions must be simultaneous for "exactly
    // 10" to hold: a barrier in front of the limiter releases all 30 Redis calls at once.
    let barrier: { waiting: (() => void)[]; size: number } | undefined;
    const h = await harness({
      env: { RATE_LIMIT_KEY_RATE: '10', RATE_LIMIT_KEY_BURST: '10' },
      configure: (c) => {
        const limits = c.rateLimits;
        c.rateLimits = {
          ...limits,
          perKey: async (caller) => {
            const gate = barrier;
            if (gate) {
              await new Promise<void>((release) => {
                gate.waiting.push(release);
                if (gate.waiting.length === gate.size) gate.waiting.forEach((go) => go());
              });
            }
            return limits.perKey(caller);
          },
        };
      },
    });
    const admin = await newAdminKey(h);
    const other = await newAdminKey(h);

    barrier = { waiting: [], size: 30 };
    const responses = await Promise.all(
      Array.from({ length: 30 }, () => h.http.get(LIST).set(bearer(admin))),
    );
    barrier = undefined;
    const ok = responses.filter((r) => r.status === 200);
    const limited = responses.filter((r) => r.status === 429);
    expect(ok).toHaveLength(10);
    expect(limited).toHaveLength(20);
    for (const res of limited) {
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(res.body.request_id).toBe(res.headers['request-id']);
      expect(res.headers['retry-after']).toMatch(/^[1-9][0-9]*$/);
      expect(res.headers['ratelimit-policy']).toBe('"per-key";q=10;w=1');
      expect(res.headers['ratelimit']).toMatch(/^"per-key";r=0;t=[1-9][0-9]*$/);
    }
    const remaining = ok.map((r) => Number(/r=(\d+)/.exec(r.headers['ratelimit'] as string)![1]));
    expect(remaining.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    const wait = Math.max(...limited.map((r) => Number(r.headers['retry-after'])));
    expect(wait).toBe(1);
    await sleep(wait * 1000);
    expect((await h.http.get(LIST).set(bearer(admin))).status).toBe(200);
    // Another key of the same kind was never affected.
    expect((await h.http.get(LIST).set(bearer(other))).status).toBe(200);
  });

  it('two app instances with their own Redis connections share one budget per key', async () => {
    const env = {
      RATE_LIMIT_KEY_PREFIX: `rl-test-${randomSuffix()}`,
      RATE_LIMIT_KEY_RATE: '0.2',
      RATE_LIMIT_KEY_BURST: '4',
    };
    const a = await harness({ env });
    const b = await harness({ env });
    expect(a.c.redis).not.toBe(b.c.redis);
    const admin = await newAdminKey(a);
    const statuses: number[] = [];
    for (const h of [a, b, a, b, a, b])
      statuses.push((await h.http.get(LIST).set(bearer(admin))).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    const last = await b.http.get(LIST).set(bearer(admin));
    expect(last.headers['ratelimit-policy']).toBe('"per-key";q=4;w=20');
    expect(Number(last.headers['retry-after'])).toBeGreaterThanOrEqual(4);
    expect(Number(last.headers['retry-after'])).toBeLessThanOrEqual(5);
  });

  it("applies an owner's own rate_limit (merchant, admin key), re-read after the policy cache expires", async () => {
    const h = await harness({ env: { RATE_LIMIT_POLICY_CACHE_MS: '200' } });
    const admin = await newAdminKey(h);
    const merchant = await newMerchant(h);
    await h.c.pool.query(
      `UPDATE merchants SET rate_limit = '{"rate": 1, "burst": 3}' WHERE id = $1`,
      [merchant.id],
    );
    const asMerchant = await h.http.get(LIST).set(bearer(merchant.key));
    expect(asMerchant.status).toBe(403);
    expect(asMerchant.headers['ratelimit-policy']).toBe('"per-key";q=3;w=3');
    expect(asMerchant.headers['ratelimit']).toBe('"per-key";r=2;t=1');

    const { rows } = await h.c.pool.query<{ id: string }>(
      'SELECT id FROM api_keys WHERE key_hash = $1',
      [hashApiKey(admin)],
    );
    const adminKeyId = rows[0]!.id;
    expect((await h.http.get(LIST).set(bearer(admin))).headers['ratelimit-policy']).toBe(
      '"per-key";q=100;w=2',
    );
    await h.c.pool.query(
      `UPDATE api_keys SET rate_limit = '{"rate": 0.5, "burst": 2}' WHERE id = $1`,
      [adminKeyId],
    );
    await sleep(250);
    const after = await h.http.get(LIST).set(bearer(admin));
    expect(after.headers['ratelimit-policy']).toBe('"per-key";q=2;w=4');
  });

  it('the database refuses a malformed rate_limit override', async () => {
    const h = await harness();
    const merchant = await newMerchant(h);
    for (const bad of [
      '{"rate": 0, "burst": 3}',
      '{"rate": 1, "burst": 2.5}',
      '{"rate": "1", "burst": 3}',
      '{"rate": 1, "burst": 3, "x": 1}',
      '[1]',
    ]) {
      await expect(
        h.c.pool.query('UPDATE merchants SET rate_limit = $2::jsonb WHERE id = $1', [
          merchant.id,
          bad,
        ]),
      ).rejects.toMatchObject({ code: '23514' });
    }
  });

  it('without Redis the same limits hold in process, and nothing counts as a fallback', async () => {
    const h = await harness({
      redis: false,
      env: { RATE_LIMIT_KEY_RATE: '0.2', RATE_LIMIT_KEY_BURST: '2' },
    });
    expect(h.c.redis).toBeNull();
    const admin = await newAdminKey(h);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await h.http.get(LIST).set(bearer(admin))).status);
    expect(statuses).toEqual([200, 200, 429]);
    const metrics = (await h.metricsHttp.get('/metrics')).text;
    expect(
      metric(metrics, 'rate_limit_decisions_total', {
        limiter: 'per_key',
        backend: 'memory',
        result: 'allowed',
      }),
    ).toBe(2);
    expect(metric(metrics, 'rate_limit_fallback_decisions_total', { limiter: 'per_key' })).toBe(0);
  });
});

describe('per-subscriber charge velocity', () => {
  it('is shared by every merchant: the 4th attempt on one MSISDN is refused whoever makes it', async () => {
    const h = await harness({ env: { RATE_LIMIT_MSISDN_PER_MINUTE: '3' } });
    const app = supertest(chargeAttemptApp(h.c));
    const [m1, m2] = [await newMerchant(h), await newMerchant(h)];
    const msisdn = `+8490${Math.floor(1e6 + Math.random() * 8e6)}`;
    const attempt = (key: string, number = msisdn) =>
      app.post('/v1/charge-attempts').set(bearer(key)).send({ msisdn: number });

    expect((await attempt(m1.key)).status).toBe(201);
    const allowed = await attempt(m2.key);
    expect(allowed.status).toBe(201);
    // An allowed attempt does not tell a merchant how often others charged the subscriber.
    expect(allowed.headers['ratelimit-policy']).toBe('"per-key";q=100;w=2');
    expect((await attempt(m1.key)).status).toBe(201);

    const refused = await attempt(m2.key);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ code: 'rate_limited', status: 429 });
    expect(refused.headers['retry-after']).toBe('20');
    expect(refused.headers['ratelimit-policy']).toBe('"per-key";q=100;w=2, "msisdn";q=3;w=60');
    expect(refused.headers['ratelimit']).toMatch(/^"per-key";r=\d+;t=\d+, "msisdn";r=0;t=20$/);
    expect((await attempt(m1.key)).status).toBe(429);

    // Another subscriber is untouched.
    expect((await attempt(m1.key, `+8491${Math.floor(1e6 + Math.random() * 8e6)}`)).status).toBe(
      201,
    );
  });

  it('decides at the service too: chargeVelocity(msisdn) from two callers draws on one budget', async () => {
    const env = {
      RATE_LIMIT_KEY_PREFIX: `rl-test-${randomSuffix()}`,
      RATE_LIMIT_MSISDN_PER_MINUTE: '2',
    };
    const a = await harness({ env });
    const b = await harness({ env });
    const msisdn = `+8492${Math.floor(1e6 + Math.random() * 8e6)}`;
    const decisions = [
      await a.c.rateLimits.chargeVelocity(msisdn),
      await b.c.rateLimits.chargeVelocity(msisdn),
      await a.c.rateLimits.chargeVelocity(msisdn),
    ];
    expect(decisions.map((d) => [d.allowed, d.remaining, d.backend])).toEqual([
      [true, 1, 'redis'],
      [true, 0, 'redis'],
      [false, 0, 'redis'],
    ]);
    expect(decisions[2]!.retryAfterSeconds).toBe(30);
    // Subscriber numbers are hashed before they become Redis keys.
    expect(await a.c.redis!.keys(`${env.RATE_LIMIT_KEY_PREFIX}:*${msisdn.slice(1)}*`)).toEqual([]);
  });
});

describe('failed-authentication brake per client address', () => {
  it('counts failures only: once engaged, bad keys get 429 while a valid key from the same address goes through', async () => {
    const h = await harness({
      env: { TRUST_PROXY: 'true', RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: '20' },
    });
    const admin = await newAdminKey(h);
    const ip = randomIp();
    const wrong = bearer(`dcb_ak_${'A'.repeat(43)}`);
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) {
      statuses.push((await h.http.get(LIST).set(wrong).set('X-Forwarded-For', ip)).status);
    }
    expect(statuses).toEqual([...Array<number>(20).fill(401), ...Array<number>(5).fill(429)]);

    const valid = await h.http.get(LIST).set(bearer(admin)).set('X-Forwarded-For', ip);
    expect(valid.status, JSON.stringify(valid.body)).toBe(200);
    // Concurrent valid requests from the braked address are not refused either.
    const many = await Promise.all(
      Array.from({ length: 10 }, () =>
        h.http.get(LIST).set(bearer(admin)).set('X-Forwarded-For', ip),
      ),
    );
    expect(many.map((r) => r.status)).toEqual(Array<number>(10).fill(200));

    const refused = await h.http.get(LIST).set(wrong).set('X-Forwarded-For', ip);
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ code: 'rate_limited' });
    expect(refused.headers['retry-after']).toBe('3');
    expect(refused.headers['ratelimit-policy']).toBe('"auth-failures";q=20;w=60');
    expect(refused.headers['ratelimit']).toBe('"auth-failures";r=0;t=3');
    // A missing or malformed key is a failure too, refused without any lookup.
    expect((await h.http.get(LIST).set('X-Forwarded-For', ip)).status).toBe(429);
    expect(
      (await h.http.get(LIST).set(bearer('not-a-key')).set('X-Forwarded-For', ip)).status,
    ).toBe(429);
    // Other addresses are not affected.
    expect((await h.http.get(LIST).set(wrong).set('X-Forwarded-For', randomIp())).status).toBe(401);

    await sleep(Number(refused.headers['retry-after']) * 1000);
    expect((await h.http.get(LIST).set(wrong).set('X-Forwarded-For', ip)).status).toBe(401);
  });

  it('the budget is shared: another instance refuses the next failure from that address', async () => {
    const env = {
      TRUST_PROXY: 'true',
      RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: '3',
      RATE_LIMIT_KEY_PREFIX: `rl-test-${randomSuffix()}`,
    };
    const a = await harness({ env });
    const b = await harness({ env });
    const ip = randomIp();
    const wrong = bearer(`dcb_ak_${'B'.repeat(43)}`);
    const statuses: number[] = [];
    for (const h of [a, a, b, b, a]) {
      statuses.push((await h.http.get(LIST).set(wrong).set('X-Forwarded-For', ip)).status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
  });

  it('groups IPv6 clients by /64 and IPv4-mapped addresses with their IPv4 form', () => {
    expect(clientAddressBucket('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(clientAddressBucket('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(clientAddressBucket('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientAddressBucket('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientAddressBucket('192.0.2.7')).toBe('192.0.2.7');
  });
});

describe('Redis round trips', () => {
  it('an authenticated request costs one Redis command; a charge attempt two', async () => {
    const h = await harness();
    const redis = h.c.redis!;
    const admin = await newAdminKey(h);
    const merchant = await newMerchant(h);
    // Load the script once (EVALSHA answers NOSCRIPT only on a server that never saw it).
    expect((await h.http.get(LIST).set(bearer(admin))).status).toBe(200);

    let commands: string[] = [];
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = (command: { name: string }, ...rest: unknown[]) => {
      commands.push(command.name);
      return (send as (...args: unknown[]) => unknown)(command, ...rest);
    };

    expect((await h.http.get(LIST).set(bearer(admin))).status).toBe(200);
    expect(commands).toEqual(['evalsha']);

    commands = [];
    const attempt = await supertest(chargeAttemptApp(h.c))
      .post('/v1/charge-attempts')
      .set(bearer(merchant.key))
      .send({ msisdn: `+8493${Math.floor(1e6 + Math.random() * 8e6)}` });
    expect(attempt.status).toBe(201);
    expect(commands).toEqual(['evalsha', 'evalsha']);
  });
});
