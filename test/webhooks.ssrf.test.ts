import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import {
  isPublicUnicast,
  type ResolvedAddress,
  type ResolveHost,
} from '../src/lib/outbound-address.js';
import { ADDRESS_REFUSED } from '../src/modules/events/webhook-delivery.js';
import { createSmsDispatcher } from '../src/modules/sms/sms-service.js';
import { charge, newCarrier, newMerchant, newSubscriber } from './helpers/factories.js';
import {
  bearer,
  createHarness,
  newAdminKey,
  randomSuffix,
  type Harness,
} from './helpers/harness.js';
import {
  dispatcherFor,
  emitChargeEvent,
  setEndpoint,
  startReceiver,
  type Receiver,
} from './helpers/webhook-receiver.js';

// SPEC §10 "Outbound URLs", outside sandbox: only public unicast addresses, in every spelling,
// judged again on the address actually connected to; redirects are not followed.

const PUBLIC_V4 = '93.184.215.14';

/**
 * The DNS these tests control. Each name answers from a table; `rebind.test` answers a public
 * address until `rebound` is set, then loopback (DNS rebinding between registration and
 * delivery). Every question is recorded, so a test can prove its name reached the resolver.
 */
const asked: string[] = [];
let rebound = false;
const zone: Record<string, string[]> = {
  'public.test': [PUBLIC_V4],
  'public-v6.test': ['2606:4700:4700::1111'],
  'internal.test': ['10.0.0.5'],
  'metadata.test': ['169.254.169.254'],
  'cgnat.test': ['100.64.1.1'],
  'mixed.test': [PUBLIC_V4, '127.0.0.1'],
  'mapped.test': ['::ffff:127.0.0.1'],
  'ula.test': ['fd12:3456::1'],
  'loopback.test': ['127.0.0.1'],
  'sms.test': [PUBLIC_V4],
  localhost: ['127.0.0.1'],
};
const resolveHost: ResolveHost = (hostname) => {
  asked.push(hostname);
  const name = hostname.replace(/\.$/, '').toLowerCase();
  if ((name === 'rebind.test' || name === 'sms.test') && rebound) {
    return Promise.resolve([{ address: '127.0.0.1', family: 4 }]);
  }
  if (name === 'rebind.test') return Promise.resolve([{ address: PUBLIC_V4, family: 4 }]);
  const answer = zone[name];
  if (!answer) {
    return Promise.reject(Object.assign(new Error(`ENOTFOUND ${name}`), { code: 'ENOTFOUND' }));
  }
  return Promise.resolve(
    answer.map((address): ResolvedAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
  );
};

let prod: Harness;
let sandbox: Harness;
/** A real receiver on 127.0.0.1: every refused URL below points at it, and it must stay silent. */
let loopback: Receiver;
let port: number;

beforeAll(async () => {
  prod = await createHarness({
    env: {
      SANDBOX: 'false',
      OTP_HASH_SECRET: `ssrf-otp-secret-${randomSuffix()}-${randomSuffix()}-${randomSuffix()}`,
    },
    resolveHost,
  });
  sandbox = await createHarness({ resolveHost });
  loopback = await startReceiver();
  port = Number(new URL(loopback.url).port);
});
afterAll(async () => {
  expect(loopback.receptions).toHaveLength(0);
  await loopback.close();
  await prod.close();
  await sandbox.close();
});

/** Spellings of a non-public target that registration must refuse with 400 url_not_allowed. */
function refusedSpellings(): string[] {
  const p = port;
  return [
    // IPv6 literals
    `http://[::ffff:127.0.0.1]:${p}/x`, // the reported case: IPv4-mapped loopback
    `http://[::ffff:7f00:1]:${p}/x`,
    `http://[0:0:0:0:0:ffff:127.0.0.1]:${p}/x`,
    `http://[::ffff:169.254.169.254]/latest/meta-data`,
    `http://[::1]:${p}/`,
    `http://[0:0:0:0:0:0:0:1]:${p}/`,
    `http://[::]:${p}/`,
    `http://[::127.0.0.1]:${p}/`, // IPv4-compatible
    `http://[64:ff9b::7f00:1]:${p}/`, // NAT64 of loopback
    `http://[64:ff9b::a00:1]/`, // NAT64 of 10.0.0.1
    `http://[2002:7f00:1::1]:${p}/`, // 6to4 embedding loopback
    `http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/`, // Teredo
    `http://[fe80::1]/`,
    `http://[fd00:ec2::254]/`,
    `http://[fc00::1]/`,
    `http://[fec0::1]/`,
    `http://[ff02::1]/`,
    // IPv4 spelled otherwise
    `http://2130706433:${p}/`, // decimal
    `http://0177.0.0.1:${p}/`, // octal
    `http://0x7f.1:${p}/`, // hex, short
    `http://0x7f000001:${p}/`, // hex
    `http://0x7f.0x0.0x0.0x1:${p}/`,
    `http://017700000001:${p}/`, // octal, one number
    `http://127.1:${p}/`,
    `http://127.0.1:${p}/`,
    `http://127.000.000.001:${p}/`,
    `http://0:${p}/`,
    `http://0.0.0.0:${p}/`,
    `http://127.0.0.1.:${p}/`, // trailing dot
    `http://%31%32%37.0.0.1:${p}/`, // percent-encoded
    `http://１２７.０.０.１:${p}/`, // full-width digits
    `http://127。0。0。1:${p}/`, // ideographic full stops
    // Private and special IPv4
    `http://10.0.0.1/`,
    `http://172.16.0.1/`,
    `http://192.168.1.10:8080/hooks`,
    `http://100.64.0.1/`, // CGNAT
    `http://169.254.169.254/latest/meta-data`,
    `http://198.18.0.1/`, // benchmarking
    `http://192.0.2.1/`, // documentation
    `http://224.0.0.1/`,
    `http://255.255.255.255/`,
    `http://240.0.0.1/`,
    // localhost names
    `http://localhost:${p}/`,
    `http://localhost.:${p}/`,
    `http://LOCALHOST:${p}/`,
    `http://api.localhost:${p}/`,
    `http://%6c%6f%63%61%6c%68%6f%73%74:${p}/`, // percent-encoded name
    `http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:${p}/`, // IDN mapping to localhost
    // userinfo and fragment tricks
    `http://public.test@127.0.0.1:${p}/`,
    `http://user:pass@public.test/`,
    `http://127.0.0.1:${p}#@public.test/`,
    // names whose DNS answers are not all public
    `http://internal.test/`,
    `http://metadata.test/`,
    `http://cgnat.test/`,
    `http://mixed.test:${p}/`,
    `http://mapped.test:${p}/`,
    `http://ula.test/`,
    `http://loopback.test:${p}/`,
    // other schemes
    'ftp://public.test/',
    'file:///etc/passwd',
    'gopher://public.test:70/_',
    'ws://public.test/',
    'javascript:alert(1)',
    'data:text/plain,hi',
  ];
}

describe('registration outside sandbox (PUT /v1/webhook-endpoint)', () => {
  it('refuses every spelling of a non-public target with 400 url_not_allowed, storing nothing', async () => {
    const m = await newMerchant(prod);
    const spellings = refusedSpellings();
    expect(spellings.length).toBeGreaterThanOrEqual(25);
    for (const url of spellings) {
      const res = await prod.http.put('/v1/webhook-endpoint').set(bearer(m.key)).send({ url });
      expect(res.status, url).toBe(400);
      expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
      expect(res.body, url).toMatchObject({ code: 'url_not_allowed', param: 'url' });
    }
    expect((await prod.http.get('/v1/webhook-endpoint').set(bearer(m.key))).status).toBe(404);
    const { rows } = await prod.c.pool.query(
      'SELECT webhook_url, webhook_secret FROM merchants WHERE id = $1',
      [m.id],
    );
    expect(rows[0]).toEqual({ webhook_url: null, webhook_secret: null });
  });

  it('a URL that does not parse is 400 validation_failed (a zone id, a bare word, an empty host)', async () => {
    const m = await newMerchant(prod);
    for (const url of ['http://[fe80::1%25eth0]/', 'not a url', 'http://', 'http://[::1/']) {
      const res = await prod.http.put('/v1/webhook-endpoint').set(bearer(m.key)).send({ url });
      expect(res.status, url).toBe(400);
      expect(res.body, url).toMatchObject({ code: 'validation_failed', param: 'url' });
    }
  });

  it('accepts public literals, names resolving to public addresses, and names that do not resolve yet', async () => {
    const m = await newMerchant(prod);
    for (const url of [
      `https://${PUBLIC_V4}/hooks`,
      'http://[2606:4700:4700::1111]:8443/hooks',
      'http://[::ffff:93.184.215.14]/hooks',
      'https://public.test/hooks',
      'https://public-v6.test/hooks',
      'https://not-yet-in-dns.test/hooks',
      'https://public.test:65535/hooks',
    ]) {
      const res = await prod.http.put('/v1/webhook-endpoint').set(bearer(m.key)).send({ url });
      expect(res.status, `${url} ${JSON.stringify(res.body)}`).toBe(200);
    }
    expect(asked).toContain('not-yet-in-dns.test');
  });

  it('admin onboarding with a webhook_url is refused the same way, creating no merchant', async () => {
    const admin = await newAdminKey(prod);
    const name = `ssrf-${randomSuffix()}`;
    for (const webhook_url of [
      `http://[::ffff:127.0.0.1]:${port}/x`,
      `http://0x7f.1:${port}/`,
      'http://metadata.test/',
    ]) {
      const res = await prod.http
        .post('/v1/admin/merchants')
        .set(bearer(admin))
        .send({ name, fee_bps: 250, webhook_url });
      expect(res.status, webhook_url).toBe(400);
      expect(res.body).toMatchObject({ code: 'url_not_allowed', param: 'webhook_url' });
    }
    const { rows } = await prod.c.pool.query('SELECT 1 FROM merchants WHERE name = $1', [name]);
    expect(rows).toHaveLength(0);

    const m = await newMerchant(prod);
    const patch = await prod.http
      .patch(`/v1/admin/merchants/${m.id}`)
      .set(bearer(admin))
      .send({ webhook_url: `http://[::1]:${port}/` });
    expect(patch.status).toBe(400);
    expect(patch.body).toMatchObject({ code: 'url_not_allowed', param: 'webhook_url' });
    const after = await prod.http.get(`/v1/admin/merchants/${m.id}`).set(bearer(admin));
    expect(after.body.webhook_url).toBeNull();
  });
});

async function lastDelivery(h: Harness, key: string, eventId: string) {
  const res = await h.http.get(`/v1/events/${eventId}`).set(bearer(key));
  expect(res.status).toBe(200);
  return res.body as {
    delivery: { status: string; attempts: number; last_status: number | null; last_error: string };
    attempt_history: { status: number | null; error: string | null }[];
  };
}

describe('delivery outside sandbox: the address connected to', () => {
  it('DNS rebinding: a name public at registration and loopback at delivery is refused, and the loopback receiver gets nothing', async () => {
    const m = await newMerchant(prod);
    rebound = false;
    await setEndpoint(prod, m.key, `http://rebind.test:${port}/hooks`);
    rebound = true;
    const d = dispatcherFor(prod, [m.id], { retryScheduleMs: [60_000], resolveHost });
    try {
      const before = asked.length;
      const { eventId } = await emitChargeEvent(prod, m.id, 'succeeded');
      expect(await d.runOnce()).toBe(1);
      // The name went through the connection's lookup (and was answered loopback there).
      expect(asked.slice(before)).toContain('rebind.test');
      const body = await lastDelivery(prod, m.key, eventId);
      expect(body.delivery).toMatchObject({
        status: 'pending',
        attempts: 1,
        last_status: null,
        last_error: ADDRESS_REFUSED,
      });
      expect(body.attempt_history).toEqual([
        expect.objectContaining({ status: null, error: ADDRESS_REFUSED }),
      ]);
    } finally {
      d.close();
      rebound = false;
    }
    expect(loopback.receptions).toHaveLength(0);
  });

  it('stored URLs that bypass registration are refused before connecting, with one message that says nothing of the network', async () => {
    const m = await newMerchant(prod);
    await setEndpoint(prod, m.key, 'https://public.test/hooks');
    const closed = await closedPort();
    const hanging = await hangingServer();
    const urls = [
      `http://[::ffff:127.0.0.1]:${port}/x`, // listening: would answer 204
      `http://[::ffff:7f00:1]:${closed}/x`, // nothing listening: would be "connection refused"
      `http://127.0.0.1:${hanging.port}/x`, // would time out
      `http://localhost:${port}/x`,
      `http://mixed.test:${port}/x`,
      `http://mapped.test:${port}/x`,
      `http://unknown-name.test:${port}/x`, // does not resolve at all
      `http://[::]:${port}/x`,
      `http://0.0.0.0:${port}/x`,
      `http://169.254.169.254/latest/meta-data`,
    ];
    const d = dispatcherFor(prod, [m.id], { retryScheduleMs: [60_000], resolveHost });
    const errors = new Set<string | null>();
    try {
      for (const url of urls) {
        await prod.c.pool.query('UPDATE merchants SET webhook_url = $2 WHERE id = $1', [m.id, url]);
        const { eventId } = await emitChargeEvent(prod, m.id, 'succeeded');
        expect(await d.runOnce(), url).toBe(1);
        const body = await lastDelivery(prod, m.key, eventId);
        expect(body.delivery, url).toMatchObject({ status: 'pending', last_status: null });
        errors.add(body.delivery.last_error);
      }
    } finally {
      d.close();
      await hanging.close();
    }
    expect([...errors]).toEqual([ADDRESS_REFUSED]);
    expect(hanging.connections()).toBe(0);
    expect(loopback.receptions).toHaveLength(0);
  });
});

describe('redirects are not followed', () => {
  it('outside sandbox, with a policy that allows one loopback receiver: a 3xx is a failed attempt and its Location is never visited', async () => {
    const target = await startReceiver();
    const redirector = await redirectingServer(target.url);
    // Only 127.0.0.1 is let through besides public addresses, and only under this name.
    const testResolver: ResolveHost = (name) =>
      name === 'receiver.test'
        ? Promise.resolve([{ address: '127.0.0.1', family: 4 }])
        : resolveHost(name);
    const allowAddress = (a: string) => a === '127.0.0.1' || isPublicUnicast(a);
    const m = await newMerchant(prod);
    await setEndpoint(prod, m.key, 'https://public.test/hooks');
    const d = dispatcherFor(prod, [m.id], {
      retryScheduleMs: [60_000],
      resolveHost: testResolver,
      allowAddress,
    });
    try {
      for (const status of [301, 302, 303, 307, 308]) {
        redirector.status = status;
        await prod.c.pool.query('UPDATE merchants SET webhook_url = $2 WHERE id = $1', [
          m.id,
          `http://receiver.test:${redirector.port}/hooks`,
        ]);
        const { eventId } = await emitChargeEvent(prod, m.id, 'succeeded');
        expect(await d.runOnce()).toBe(1);
        const body = await lastDelivery(prod, m.key, eventId);
        expect(body.delivery, String(status)).toMatchObject({
          status: 'pending',
          last_status: status,
          last_error: 'redirect not followed',
        });
      }
      expect(redirector.requests()).toBe(5);
      expect(target.receptions).toHaveLength(0);

      // The control: the same set-up reaches the target when it is the URL itself.
      await prod.c.pool.query('UPDATE merchants SET webhook_url = $2 WHERE id = $1', [
        m.id,
        target.url.replace('127.0.0.1', 'receiver.test'),
      ]);
      const { eventId } = await emitChargeEvent(prod, m.id, 'succeeded');
      expect(await d.runOnce()).toBe(1);
      expect((await lastDelivery(prod, m.key, eventId)).delivery.status).toBe('delivered');
      expect(target.receptions).toHaveLength(1);
    } finally {
      d.close();
      await redirector.close();
      await target.close();
    }
  });

  it('in sandbox, where loopback is allowed, a redirect is not followed either', async () => {
    const target = await startReceiver();
    const redirector = await redirectingServer(target.url);
    const m = await newMerchant(sandbox);
    await setEndpoint(sandbox, m.key, `http://127.0.0.1:${redirector.port}/hooks`);
    const d = dispatcherFor(sandbox, [m.id], { retryScheduleMs: [60_000] });
    try {
      const { eventId } = await emitChargeEvent(sandbox, m.id, 'succeeded');
      expect(await d.runOnce()).toBe(1);
      const body = await lastDelivery(sandbox, m.key, eventId);
      expect(body.delivery).toMatchObject({
        last_status: 307,
        last_error: 'redirect not followed',
      });
      expect(redirector.requests()).toBe(1);
      expect(target.receptions).toHaveLength(0);
    } finally {
      d.close();
      await redirector.close();
      await target.close();
    }
  });
});

describe('the carrier SMS adapter outside sandbox', () => {
  it('refuses a non-public sms_url when a carrier is created or changed', async () => {
    const admin = await newAdminKey(prod);
    const code = `car-${randomSuffix()}`;
    for (const sms_url of [
      `http://[::ffff:127.0.0.1]:${port}/sms`,
      `http://2130706433:${port}/sms`,
      'http://internal.test/sms',
      'file:///etc/passwd',
    ]) {
      const res = await prod.http.post('/v1/admin/carriers').set(bearer(admin)).send({
        code,
        name: 'SSRF carrier',
        currency: 'VND',
        timezone: 'Asia/Ho_Chi_Minh',
        revenue_share_bps: 3000,
        sms_url,
      });
      expect(res.status, sms_url).toBe(400);
      expect(res.body).toMatchObject({ code: 'url_not_allowed', param: 'sms_url' });
    }
    const { rows } = await prod.c.pool.query('SELECT 1 FROM carriers WHERE code = $1', [code]);
    expect(rows).toHaveLength(0);

    const carrier = await newCarrier(prod, { sms_url: 'https://public.test/sms' });
    const patch = await prod.http
      .patch(`/v1/admin/carriers/${carrier.id}`)
      .set(bearer(admin))
      .send({ sms_url: `http://[fd00:ec2::254]/sms` });
    expect(patch.status).toBe(400);
    expect(patch.body).toMatchObject({ code: 'url_not_allowed', param: 'sms_url' });
    const after = await prod.http.get(`/v1/admin/carriers/${carrier.id}`).set(bearer(admin));
    expect(after.body.sms_url).toBe('https://public.test/sms');
  });

  it('does not send a one-time code to a carrier host that rebinds to loopback, nor to a stored loopback literal', async () => {
    const carrier = await newCarrier(prod, {
      otp_threshold: '10000',
      sms_url: `http://sms.test:${port}/sms`,
    });
    const merchant = await newMerchant(prod);
    const sub = await newSubscriber(prod, carrier, { balance: '100000' });
    const worker = createSmsDispatcher({
      pool: prod.c.pool,
      logger: prod.c.logger,
      metrics: prod.c.metrics,
      sandbox: false,
      timeoutMs: 2000,
      carrierIds: [carrier.id],
      resolveHost,
    });
    rebound = true;
    try {
      for (const smsUrl of [null, `http://[::ffff:7f00:1]:${port}/sms`]) {
        if (smsUrl) {
          await prod.c.pool.query('UPDATE carriers SET sms_url = $2 WHERE id = $1', [
            carrier.id,
            smsUrl,
          ]);
        }
        const res = await charge(prod, merchant, { msisdn: sub.msisdn, amount: '10000' });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        expect(res.body.status).toBe('pending_validation');
        await worker.runOnce();
        const { rows } = await prod.c.pool.query<{
          status: string;
          attempts: number;
          last_status: number | null;
          last_error: string;
        }>(
          `SELECT s.status, s.attempts, s.last_status, s.last_error FROM sms_outbox s
            WHERE s.charge_id = $1`,
          [res.body.id],
        );
        expect(rows).toEqual([
          { status: 'pending', attempts: 1, last_status: null, last_error: ADDRESS_REFUSED },
        ]);
      }
    } finally {
      rebound = false;
      worker.close();
    }
    expect(loopback.receptions).toHaveLength(0);
  });

  it('an operator may name private carrier networks; a malformed list stops the process', () => {
    expect(
      loadConfig({ SMS_PRIVATE_NETWORKS: '10.20.0.0/16,fd00:1::/64' }).SMS_PRIVATE_NETWORKS,
    ).toEqual(['10.20.0.0/16', 'fd00:1::/64']);
    expect(() => loadConfig({ SMS_PRIVATE_NETWORKS: '10.20.0.0/16,intranet' })).toThrow(
      /SMS_PRIVATE_NETWORKS/,
    );
  });
});

/** A port on 127.0.0.1 with nothing listening. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: free } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return free;
}

/** Accepts connections and never answers; counts them. */
async function hangingServer() {
  let count = 0;
  const server = http.createServer(() => undefined);
  server.on('connection', () => (count += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Answers every request with `status` and a Location pointing at `location`. */
async function redirectingServer(location: string) {
  let count = 0;
  const state = { status: 307 };
  const server = http.createServer((req, res) => {
    count += 1;
    req.resume();
    req.on('end', () => {
      res.writeHead(state.status, { Location: location });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    get status() {
      return state.status;
    },
    set status(s: number) {
      state.status = s;
    },
    port: (server.address() as AddressInfo).port,
    requests: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
