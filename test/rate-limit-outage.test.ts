import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  bearer,
  createHarness,
  newAdminKey,
  randomSuffix,
  type Harness,
  type HarnessOptions,
} from './helpers/harness.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const open: Harness[] = [];
const proxies: TcpProxy[] = [];
async function harness(options: HarnessOptions): Promise<Harness> {
  const h = await createHarness({
    productionRateLimits: true,
    redisCommandTimeoutMs: 500,
    ...options,
  });
  open.push(h);
  return h;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
  for (const proxy of proxies.splice(0)) await proxy.stop().catch(() => undefined);
});

const LIST = '/v1/admin/merchants?limit=1';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
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

async function counters(h: Harness) {
  const text = (await h.metricsHttp.get('/metrics')).text;
  return {
    fallback: metric(text, 'rate_limit_fallback_decisions_total', { limiter: 'per_key' }),
    redis: metric(text, 'rate_limit_decisions_total', { limiter: 'per_key', backend: 'redis' }),
    degraded: Number(/^rate_limit_redis_degraded (\d+)/m.exec(text)?.[1]),
  };
}

function logCount(h: Harness, message: string): number {
  return h.logs.filter((line) => line.includes(message)).length;
}
const DOWN = 'Redis unavailable';
const BACK = 'Redis answers again';

async function proxiedHarnesses(env: Record<string, string>) {
  const proxy = TcpProxy.for(inject('redisUrl'), 6379);
  await proxy.start();
  proxies.push(proxy);
  const shared = { RATE_LIMIT_KEY_PREFIX: `rl-test-${randomSuffix()}`, ...env };
  const viaProxy = await harness({
    env: { ...shared, REDIS_URL: `redis://127.0.0.1:${proxy.port}` },
  });
  // A second instance on a healthy connection, to show the limits live in Redis again afterwards.
  const direct = await harness({ env: shared });
  return { proxy, viaProxy, direct };
}

describe('rate limits while Redis is unavailable', () => {
  it('Redis down: requests keep flowing under the in-process limiter, one warning, counted; Redis is used again when it returns', async () => {
    const {
      proxy,
      viaProxy: h,
      direct,
    } = await proxiedHarnesses({
      RATE_LIMIT_KEY_RATE: '0.1',
      RATE_LIMIT_KEY_BURST: '6',
    });
    const admin = await newAdminKey(h);
    const first = await h.http.get(LIST).set(bearer(admin));
    expect(first.headers['ratelimit']).toBe('"per-key";r=5;t=10');
    expect((await counters(h)).redis).toBe(1);

    const port = proxy.port;
    await proxy.stop();
    await waitFor(() => h.c.redis!.status !== 'ready', 2000);

    const during = [];
    for (let i = 0; i < 7; i++) during.push(await h.http.get(LIST).set(bearer(admin)));
    // The in-process limiter starts with a full burst of 6 and enforces it; nothing is a 500.
    expect(during.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 429]);
    expect(during[0]!.headers['ratelimit']).toBe('"per-key";r=5;t=10');
    expect(during[6]!.headers['retry-after']).toBe('10');
    const outage = await counters(h);
    expect(outage.fallback).toBe(7);
    expect(outage.degraded).toBe(1);
    expect(logCount(h, DOWN)).toBe(1);

    await proxy.start(port);
    await waitFor(() => h.c.redis!.status === 'ready', 5000);
    // Redis still holds the state from before the outage: 5 left, now 4.
    const back = await h.http.get(LIST).set(bearer(admin));
    expect(back.status).toBe(200);
    expect(back.headers['ratelimit']).toBe('"per-key";r=4;t=10');
    const after = await counters(h);
    expect(after).toMatchObject({ fallback: 7, redis: 2, degraded: 0 });
    expect(logCount(h, BACK)).toBe(1);
    expect(logCount(h, DOWN)).toBe(1);

    // Shared again: another instance uses up the rest, and this one is refused by Redis.
    for (let i = 0; i < 4; i++) {
      expect((await direct.http.get(LIST).set(bearer(admin))).status).toBe(200);
    }
    expect((await direct.http.get(LIST).set(bearer(admin))).status).toBe(429);
    expect((await h.http.get(LIST).set(bearer(admin))).status).toBe(429);
  });

  it('Redis hung: after one command timeout, requests skip Redis until a probe gets an answer', async () => {
    const { proxy, viaProxy: h } = await proxiedHarnesses({ RATE_LIMIT_REDIS_RETRY_MS: '300' });
    const admin = await newAdminKey(h);
    expect((await h.http.get(LIST).set(bearer(admin))).status).toBe(200);

    proxy.hang();
    const timings: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const res = await h.http.get(LIST).set(bearer(admin));
      timings.push(Date.now() - started);
      expect(res.status).toBe(200);
    }
    // The first waits for the harness's 500 ms command timeout; the next ones do not wait.
    expect(timings[0]).toBeGreaterThanOrEqual(450);
    for (const ms of timings.slice(1)) expect(ms).toBeLessThan(300);
    expect((await counters(h)).fallback).toBe(5);
    expect(logCount(h, DOWN)).toBe(1);

    proxy.resume();
    await sleep(350);
    const res = await h.http.get(LIST).set(bearer(admin));
    expect(res.status).toBe(200);
    const after = await counters(h);
    expect(after.redis).toBe(2);
    expect(after.fallback).toBe(5);
    expect(logCount(h, BACK)).toBe(1);
  });

  it('the auth-failure brake and the charge velocity fall back as well', async () => {
    const { proxy, viaProxy: h } = await proxiedHarnesses({
      TRUST_PROXY: 'true',
      RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: '2',
      RATE_LIMIT_MSISDN_PER_MINUTE: '2',
    });
    await proxy.stop();
    await waitFor(() => h.c.redis!.status !== 'ready', 2000);
    const wrong = bearer(`dcb_ak_${'C'.repeat(43)}`);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await h.http.get(LIST).set(wrong).set('X-Forwarded-For', '10.9.8.7')).status);
    }
    expect(statuses).toEqual([401, 401, 429]);
    const msisdn = `+8494${Math.floor(1e6 + Math.random() * 8e6)}`;
    const velocity = [];
    for (let i = 0; i < 3; i++) velocity.push(await h.c.rateLimits.chargeVelocity(msisdn));
    expect(velocity.map((d) => [d.allowed, d.backend])).toEqual([
      [true, 'memory'],
      [true, 'memory'],
      [false, 'memory'],
    ]);
    const text = (await h.metricsHttp.get('/metrics')).text;
    expect(metric(text, 'rate_limit_fallback_decisions_total', { limiter: 'msisdn' })).toBe(3);
    expect(
      metric(text, 'rate_limit_fallback_decisions_total', { limiter: 'auth_failure' }),
    ).toBeGreaterThanOrEqual(3);
  });
});
