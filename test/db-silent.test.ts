import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { newMerchant } from './helpers/factories.js';
import { bearer, createHarness, type Harness } from './helpers/harness.js';

let proxy: TcpProxy;
let h: Harness;
beforeAll(async () => {
  proxy = TcpProxy.for(inject('databaseUrl'), 5432);
  await proxy.start();
  h = await createHarness({
    databaseUrl: proxy.rewrite(inject('databaseUrl')),
    pgQueryTimeoutMs: 1500,
    env: { PG_STATEMENT_TIMEOUT_MS: '1000' },
  });
});
afterAll(async () => {
  await h.close();
  await proxy.stop();
});

describe('a PostgreSQL that goes silent', () => {
  it('answers 503 with Retry-After within the query timeout, then recovers without a restart', async () => {
    const merchant = await newMerchant(h);
    expect((await h.http.get('/v1/charges').set(bearer(merchant.key))).status).toBe(200);
    proxy.hang();
    const started = Date.now();
    const during = await h.http.get('/v1/charges').set(bearer(merchant.key));
    const waited = Date.now() - started;
    expect(during.status).toBe(503);
    expect(during.body.code).toBe('service_unavailable');
    expect(Number(during.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(waited).toBeLessThan(15_000);
    proxy.resume();
    let after = 0;
    for (let i = 0; i < 50 && after !== 200; i++) {
      after = (await h.http.get('/v1/charges').set(bearer(merchant.key))).status;
      if (after !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    expect(after).toBe(200);
  });
});
