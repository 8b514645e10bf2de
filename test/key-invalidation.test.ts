import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newMerchant } from './helpers/factories.js';
import {
  bearer,
  createHarness,
  newAdminKey,
  newOperator,
  type Harness,
} from './helpers/harness.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

// Two instances of one deployment on the same database, trusting a resolved key for 60 s as a
// production instance may: only the pushed notification can make B refuse a key within a second.
const PRODUCTION_CACHE = { API_KEY_CACHE_MS: '60000' };
let a: Harness;
let b: Harness;
beforeAll(async () => {
  [a, b] = await Promise.all([
    createHarness({ env: PRODUCTION_CACHE }),
    createHarness({ env: PRODUCTION_CACHE }),
  ]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until the key is refused; returns how long that took, or Infinity after `withinMs`. */
async function msUntilRefused(h: Harness, key: string, path: string, withinMs: number) {
  const start = Date.now();
  while (Date.now() - start <= withinMs) {
    const res = await h.http.get(path).set(bearer(key));
    if (res.status === 401) return Date.now() - start;
    expect(res.status, res.text).toBe(200);
    await sleep(25);
  }
  return Infinity;
}

async function waitListening(h: Harness, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!h.c.authChanges?.listening) {
    if (Date.now() - start > timeoutMs) throw new Error('the listener did not reconnect');
    await sleep(20);
  }
}

describe('revocations and suspensions reach every instance within a second', () => {
  it('a key used on B and revoked on A is refused on B within 1 s', async () => {
    const merchant = await newMerchant(a);
    // Used on B: resolved and cached there for 60 s.
    expect((await b.http.get('/v1/balance').set(bearer(merchant.key))).status).toBe(200);
    const { rows } = await a.c.pool.query<{ id: string }>(
      `SELECT id FROM api_keys WHERE owner_id = $1`,
      [merchant.id],
    );
    const admin = await newAdminKey(a);
    const revoked = await a.http.delete(`/v1/admin/api-keys/${rows[0]!.id}`).set(bearer(admin));
    expect(revoked.status).toBe(200);
    expect(await msUntilRefused(b, merchant.key, '/v1/balance', 1000)).toBeLessThan(1000);
  });

  it('suspending an operator on A refuses every one of their keys on B within 1 s; activating restores them', async () => {
    const merchant = await newMerchant(a);
    const staff = await newOperator(a, 'merchant', merchant.id);
    const admin = await newAdminKey(a);
    const second = await a.http
      .post('/v1/admin/api-keys')
      .set(bearer(admin))
      .send({ role: 'merchant', operator_id: staff.id });
    expect(second.status, second.text).toBe(201);
    const keys = [staff.key, second.body.key as string];
    for (const key of keys) {
      expect((await b.http.get('/v1/balance').set(bearer(key))).status).toBe(200);
    }
    const suspended = await a.http
      .post(`/v1/admin/operators/${staff.id}/suspend`)
      .set(bearer(admin));
    expect(suspended.status, suspended.text).toBe(200);
    const took = await Promise.all(keys.map((k) => msUntilRefused(b, k, '/v1/balance', 1000)));
    for (const ms of took) expect(ms).toBeLessThan(1000);
    // The tenant's machine key is not the person's: it keeps working.
    expect((await b.http.get('/v1/balance').set(bearer(merchant.key))).status).toBe(200);

    const activated = await a.http
      .post(`/v1/admin/operators/${staff.id}/activate`)
      .set(bearer(admin));
    expect(activated.status).toBe(200);
    for (const key of keys) {
      expect((await b.http.get('/v1/balance').set(bearer(key))).status).toBe(200);
    }
  });

  it("revoking an admin's key on A while B serves it: refused on B within 1 s", async () => {
    const alice = await newOperator(a, 'admin');
    const bob = await newOperator(a, 'admin');
    expect((await b.http.get('/v1/admin/operators').set(bearer(alice.key))).status).toBe(200);
    const revoked = await a.http.delete(`/v1/admin/api-keys/${alice.keyId}`).set(bearer(bob.key));
    expect(revoked.status).toBe(200);
    expect(await msUntilRefused(b, alice.key, '/v1/admin/operators', 1000)).toBeLessThan(1000);
  });
});

describe('a lookup racing a revocation', () => {
  it('a key read just before its revocation committed is answered once, not cached', async () => {
    const merchant = await newMerchant(a);
    const { rows } = await a.c.pool.query<{ id: string }>(
      'SELECT id FROM api_keys WHERE owner_id = $1',
      [merchant.id],
    );
    const admin = await newAdminKey(a);
    // B's lookup of the key reads it while it is still active, then is held until A has
    // revoked it and B has heard so.
    const pool = b.c.pool as unknown as { query: (...args: unknown[]) => Promise<unknown> };
    const query = pool.query.bind(b.c.pool);
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let read = false;
    pool.query = async (...args: unknown[]) => {
      const result = await query(...args);
      if (!read && typeof args[0] === 'string' && args[0].includes('FROM api_keys k')) {
        read = true;
        await held;
      }
      return result;
    };
    try {
      const racing = b.http
        .get('/v1/balance')
        .set(bearer(merchant.key))
        .then((r) => r.status);
      while (!read) await sleep(5);
      const revoked = await a.http.delete(`/v1/admin/api-keys/${rows[0]!.id}`).set(bearer(admin));
      expect(revoked.status).toBe(200);
      await sleep(300);
      release();
      expect(await racing).toBe(200);
    } finally {
      pool.query = query;
    }
    // Not cached for 60 s: the next request looks the key up and finds it revoked.
    expect((await b.http.get('/v1/balance').set(bearer(merchant.key))).status).toBe(401);
  });
});

describe('when the notification channel is down', () => {
  const TTL_MS = 3000;
  let proxy: TcpProxy;
  let c: Harness;
  beforeAll(async () => {
    const url = inject('databaseUrl');
    proxy = TcpProxy.for(url, 5432);
    await proxy.start();
    // Its pool talks to the database directly; only its listener goes through the proxy.
    c = await createHarness({
      env: { API_KEY_CACHE_MS: String(TTL_MS) },
      authChangesUrl: proxy.rewrite(url),
    });
    await waitListening(c);
  });
  afterAll(async () => {
    await c?.close();
    await proxy?.stop();
  });

  it('the cache lifetime still bounds a revocation, and the listener comes back when it can', async () => {
    const merchant = await newMerchant(a);
    const admin = await newAdminKey(a);
    const keyId = async (ownerId: string) => {
      const { rows } = await a.c.pool.query<{ id: string }>(
        'SELECT id FROM api_keys WHERE owner_id = $1 ORDER BY id DESC LIMIT 1',
        [ownerId],
      );
      return rows[0]!.id;
    };

    expect((await c.http.get('/v1/balance').set(bearer(merchant.key))).status).toBe(200);
    const cachedAt = Date.now();
    await proxy.stop();
    const deaf = Date.now();
    while (c.c.authChanges?.listening) {
      if (Date.now() - deaf > 5000) throw new Error('the listener did not notice the cut');
      await sleep(10);
    }
    expect(
      (await a.http.delete(`/v1/admin/api-keys/${await keyId(merchant.id)}`).set(bearer(admin)))
        .status,
    ).toBe(200);
    // Not heard: the cached key still works here for a while, but no longer than its lifetime.
    await sleep(300);
    expect((await c.http.get('/v1/balance').set(bearer(merchant.key))).status).toBe(200);
    const refusedAfter = await msUntilRefused(c, merchant.key, '/v1/balance', TTL_MS + 1000);
    expect(refusedAfter).toBeLessThan(Infinity);
    expect(Date.now() - cachedAt).toBeLessThan(TTL_MS + 1000);

    // The channel returns: the listener reconnects by itself and pushes work again.
    await proxy.start();
    await waitListening(c);
    const other = await newMerchant(a);
    expect((await c.http.get('/v1/balance').set(bearer(other.key))).status).toBe(200);
    const cachedAgainAt = Date.now();
    expect(
      (await a.http.delete(`/v1/admin/api-keys/${await keyId(other.id)}`).set(bearer(admin)))
        .status,
    ).toBe(200);
    expect(await msUntilRefused(c, other.key, '/v1/balance', 1000)).toBeLessThan(1000);
    // Sooner than the cache lifetime could explain: the notification did it.
    expect(Date.now() - cachedAgainAt).toBeLessThan(TTL_MS);
  });
});
