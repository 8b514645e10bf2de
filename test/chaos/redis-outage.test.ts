import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createHarness, newAdminKey, type Harness } from '../helpers/harness.js';
import { dropFreshDatabases, openFreshDatabase } from './helpers/chaos-db.js';
import {
  bearerHeaders,
  call,
  ConnectionLost,
  percentile,
  sleep,
  type Answer,
} from './helpers/http-client.js';
import { ledgerVerify, seedTenants, type Tenants } from './helpers/tenants.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

/**
 * SPEC §3.2: nothing that moves money depends on Redis. Under concurrent charge load the
 * gateway's Redis connection goes through a TCP proxy that is cut (Redis down), restored, then
 * hung (Redis stops answering) and restored again. Every charge must succeed.
 */

const WORKERS = 6;

let databaseUrl: string;
let db: pg.Client;
let proxy: TcpProxy;
let h: Harness;
let server: Server;
let baseUrl: string;
let tenants: Tenants;

beforeAll(async () => {
  ({ databaseUrl, db } = await openFreshDatabase('redisoutage'));
  proxy = TcpProxy.for(inject('redisUrl'), 6379);
  await proxy.start();
  h = await createHarness({
    databaseUrl,
    // Short, like production's 200 ms: a hung Redis costs a request at most this per probe.
    redisCommandTimeoutMs: 500,
    env: {
      REDIS_URL: proxy.rewrite(inject('redisUrl')),
      RATE_LIMIT_REDIS_RETRY_MS: '300',
    },
  });
  server = h.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tenants = await seedTenants(baseUrl, await newAdminKey(h), {
    subscribers: 12,
    balance: '50000000',
  });
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.close();
  await proxy?.stop();
  await db?.end();
  await dropFreshDatabases();
});

function metric(text: string, name: string, labels: Record<string, string>): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inside = line.slice(name.length + 1, line.indexOf('}')).split(',');
    if (wanted.every((w) => inside.includes(w))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

async function decisions() {
  const text = (await h.metricsHttp.get('/metrics')).text;
  return {
    redis: metric(text, 'rate_limit_decisions_total', { backend: 'redis' }),
    fallback: metric(text, 'rate_limit_fallback_decisions_total', {}),
  };
}

type Phase = 'healthy' | 'down' | 'back' | 'hung' | 'resumed';

describe('Redis outage under charge load', () => {
  it('zero failed payments while Redis is down or hung; Redis is used again when it returns', async () => {
    let phase: Phase = 'healthy';
    const results: { phase: Phase; answer?: Answer; lost?: string }[] = [];
    let loading = true;
    const workers = Array.from({ length: WORKERS }, async (_, w) => {
      let i = 0;
      while (loading) {
        const msisdn = tenants.msisdns[(w + i++) % tenants.msisdns.length]!;
        const result: (typeof results)[number] = { phase };
        results.push(result);
        try {
          result.answer = await call(baseUrl, 'POST', '/v1/charges', {
            headers: bearerHeaders(tenants.merchant.key, {
              'idempotency-key': `k-${randomBytes(6).toString('hex')}`,
            }),
            body: {
              msisdn,
              amount: String(1000 + Math.floor(Math.random() * 4000)),
              currency: 'VND',
              description: 'chaos: redis outage',
              capture: Math.random() < 0.7,
            },
          });
        } catch (err) {
          if (!(err instanceof ConnectionLost)) throw err;
          result.lost = err.code;
        }
      }
    });

    const at = async (next: Phase, ms: number, change: () => unknown) => {
      await change();
      phase = next;
      await sleep(ms);
    };
    await at('healthy', 1500, () => undefined);
    const before = await decisions();
    await at('down', 2500, () => proxy.stop());
    const during = await decisions();
    await at('back', 2000, () => proxy.start());
    const back = await decisions();
    await at('hung', 2500, () => proxy.hang());
    await at('resumed', 2000, () => proxy.resume());
    loading = false;
    await Promise.all(workers);
    const after = await decisions();

    const byPhase = (p: Phase) => results.filter((r) => r.phase === p);
    const summary = Object.fromEntries(
      (['healthy', 'down', 'back', 'hung', 'resumed'] as const).map((p) => [
        p,
        {
          charges: byPhase(p).length,
          p99ms: Math.round(
            percentile(
              byPhase(p).map((r) => r.answer?.ms ?? 0),
              99,
            ),
          ),
        },
      ]),
    );
    console.log('redis outage:', JSON.stringify({ summary, before, during, back, after }));

    // Zero failed payments: every charge in every phase got its 201.
    const failed = results.filter((r) => r.answer?.status !== 201);
    expect(
      failed.map((r) => `${r.phase} ${r.lost ?? `${r.answer!.status} ${r.answer!.text}`}`),
    ).toEqual([]);
    for (const p of ['healthy', 'down', 'back', 'hung', 'resumed'] as const) {
      expect(byPhase(p).length, p).toBeGreaterThan(0);
    }
    // The limits really fell back while Redis was away, and went back to Redis after each outage.
    expect(during.fallback).toBeGreaterThan(before.fallback);
    expect(back.redis).toBeGreaterThan(during.redis);
    expect(after.fallback).toBeGreaterThan(back.fallback);
    expect(after.redis).toBeGreaterThan(back.redis);

    const { rows } = await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM charges WHERE merchant_id = $1',
      [tenants.merchant.id],
    );
    expect(rows[0]!.n).toBe(results.length);
    expect((await ledgerVerify(baseUrl, await newAdminKey(h))).ok).toBe(true);
  });
});
