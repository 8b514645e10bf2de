import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertServerConfig, ConfigError, loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { resolveOtpSecret } from '../src/modules/charges/charges-consent.js';
import { freshDatabase, type FreshDatabase } from './helpers/audit.js';
import { codeIn, confirm, logsMention, smsWorker } from './helpers/consent.js';
import { charge, newCarrier, newMerchant, newSubscriber } from './helpers/factories.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';
import { startReceiver, type Receiver } from './helpers/webhook-receiver.js';

// Outside sandbox the worker really POSTs to carriers; a database of its own keeps it away from
// the other files' messages.
let db: FreshDatabase;
let h: Harness;
let receiver: Receiver;
beforeAll(async () => {
  db = await freshDatabase();
  h = await createHarness({
    databaseUrl: db.url,
    env: {
      SANDBOX: 'false',
      OTP_HASH_SECRET: `test-otp-secret-${randomSuffix()}-${randomSuffix()}-${randomSuffix()}`,
      SMS_TIMEOUT_MS: '300',
      // The carrier here is a loopback receiver, allowed as an operator-named private network.
      SMS_PRIVATE_NETWORKS: '127.0.0.0/8',
      RATE_LIMIT_MSISDN_PER_MINUTE: '100000',
    },
  });
  receiver = await startReceiver();
});
afterAll(async () => {
  await receiver.close();
  await h.close();
  await db.drop();
});

interface OutboxRow {
  id: string;
  status: string;
  attempts: number;
  message: string | null;
  last_status: number | null;
  last_error: string | null;
  retry_in_ms: number | null;
}

async function outboxFor(msisdn: string): Promise<OutboxRow[]> {
  const { rows } = await h.c.pool.query<OutboxRow>(
    `SELECT id, status, attempts, message, last_status, last_error,
            (extract(epoch FROM next_attempt_at - now()) * 1000)::int AS retry_in_ms
       FROM sms_outbox WHERE msisdn = $1 ORDER BY id`,
    [msisdn],
  );
  return rows;
}

async function pendingConsent(smsUrl: string | null = receiver.url) {
  const carrier = await newCarrier(h, { otp_threshold: '10000', sms_url: smsUrl });
  const merchant = await newMerchant(h);
  const sub = await newSubscriber(h, carrier, { balance: '100000' });
  const res = await charge(h, merchant, { msisdn: sub.msisdn, amount: '10000' });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  expect(res.body.status).toBe('pending_validation');
  return { carrier, merchant, sub, chargeId: res.body.id as string };
}

function receptionsTo(msisdn: string) {
  return receiver.receptions.filter((r) => (r.body as unknown as { to: string }).to === msisdn);
}

describe('SMS outbox outside sandbox', () => {
  it('POSTs the code to the carrier’s sms_url after commit, retries a failure, and erases the text once delivered', async () => {
    const { merchant, sub, chargeId } = await pendingConsent();
    const [queued] = await outboxFor(sub.msisdn);
    expect(queued).toMatchObject({ status: 'pending', attempts: 0 });
    const code = codeIn(queued!.message!);
    expect(receptionsTo(sub.msisdn)).toHaveLength(0);

    receiver.respond = (r) => ((r.body as unknown as { to: string }).to === sub.msisdn ? 503 : 204);
    await smsWorker(h).runOnce();
    const [failed] = await outboxFor(sub.msisdn);
    expect(failed).toMatchObject({ status: 'pending', attempts: 1, last_status: 503 });
    expect(failed!.message).not.toBeNull();
    // First retry after 2 s, jittered to between 1 and 2 s.
    expect(failed!.retry_in_ms).toBeGreaterThan(500);
    expect(failed!.retry_in_ms).toBeLessThanOrEqual(2000);

    receiver.respond = () => 204;
    await h.c.pool.query(`UPDATE sms_outbox SET next_attempt_at = now() WHERE id = $1`, [
      queued!.id,
    ]);
    await smsWorker(h).runOnce();
    const [delivered] = await outboxFor(sub.msisdn);
    expect(delivered).toMatchObject({
      status: 'delivered',
      attempts: 2,
      last_status: 204,
      message: null,
    });

    const got = receptionsTo(sub.msisdn);
    expect(got).toHaveLength(2);
    for (const r of got) {
      expect(r.headers['idempotency-key']).toBe(queued!.id);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.body).toMatchObject({ id: queued!.id, to: sub.msisdn });
      expect(codeIn((r.body as unknown as { text: string }).text)).toBe(code);
    }

    const done = await confirm(h, merchant.key, chargeId, code);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.status).toBe('succeeded');
    expect(h.logs.some((l) => l.includes('SMS delivery failed'))).toBe(true);
    expect(logsMention(h, code)).toBe(false);
  });

  it('a carrier that does not answer in time is retried; a 4xx refusal ends the message and erases it', async () => {
    const { sub } = await pendingConsent();
    receiver.respond = (r) =>
      (r.body as unknown as { to: string }).to === sub.msisdn ? 'hang' : 204;
    await smsWorker(h).runOnce();
    const [timedOut] = await outboxFor(sub.msisdn);
    expect(timedOut).toMatchObject({ status: 'pending', attempts: 1, last_status: null });
    expect(timedOut!.last_error).toMatch(/timeout/);

    receiver.respond = () => 400;
    await h.c.pool.query(`UPDATE sms_outbox SET next_attempt_at = now() WHERE id = $1`, [
      timedOut!.id,
    ]);
    await smsWorker(h).runOnce();
    const [refused] = await outboxFor(sub.msisdn);
    expect(refused).toMatchObject({
      status: 'failed',
      attempts: 2,
      last_status: 400,
      message: null,
    });
    receiver.respond = () => 204;
  });

  it('a message whose code expired, or whose charge was cancelled, is dropped unsent', async () => {
    const expired = await pendingConsent();
    await h.c.pool.query(
      `UPDATE sms_outbox SET expires_at = now() - interval '1 second' WHERE msisdn = $1`,
      [expired.sub.msisdn],
    );
    const cancelled = await pendingConsent();
    const cancel = await h.http
      .post(`/v1/charges/${cancelled.chargeId}/cancel`)
      .set(bearer(cancelled.merchant.key))
      .set('Idempotency-Key', `c-${randomSuffix()}`);
    expect(cancel.status).toBe(200);

    await smsWorker(h).runOnce();
    for (const { sub } of [expired, cancelled]) {
      expect(await outboxFor(sub.msisdn)).toMatchObject([{ status: 'expired', message: null }]);
      expect(receptionsTo(sub.msisdn)).toHaveLength(0);
    }
  });

  it('a carrier without sms_url cannot take the message: it fails and is erased', async () => {
    const { sub } = await pendingConsent(null);
    await smsWorker(h).runOnce();
    expect(await outboxFor(sub.msisdn)).toMatchObject([
      { status: 'failed', message: null, last_error: 'the carrier has no sms_url' },
    ]);
  });

  it('concurrent workers deliver each message exactly once', async () => {
    const subs = await Promise.all(Array.from({ length: 6 }, () => pendingConsent()));
    await Promise.all([1, 2, 3].map(() => smsWorker(h).runOnce()));
    for (const { sub } of subs) {
      expect(receptionsTo(sub.msisdn)).toHaveLength(1);
      expect(await outboxFor(sub.msisdn)).toMatchObject([{ status: 'delivered', attempts: 1 }]);
    }
  });

  it('the sandbox SMS inbox does not exist outside sandbox', async () => {
    const { merchant, sub } = await pendingConsent();
    const res = await h.http
      .get(`/v1/sandbox/sms?msisdn=${encodeURIComponent(sub.msisdn)}`)
      .set(bearer(merchant.key));
    expect(res.status).toBe(404);
    expect(res.body.code).toBe('route_not_found');
  });
});

describe('the code hash secret', () => {
  it('is required to serve outside sandbox', () => {
    const production = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/gw' });
    expect(() => assertServerConfig(production)).toThrow(ConfigError);
    expect(() => assertServerConfig(production)).toThrow(/OTP_HASH_SECRET/);
    const secret = 'a-secret-of-at-least-thirty-two-characters';
    expect(() =>
      assertServerConfig(
        loadConfig({ DATABASE_URL: 'postgres://u@db:5432/gw', OTP_HASH_SECRET: secret }),
      ),
    ).not.toThrow();
    expect(() => assertServerConfig(loadConfig({}))).not.toThrow();
    expect(() => loadConfig({ OTP_HASH_SECRET: 'too-short' })).toThrow(/OTP_HASH_SECRET/);
  });

  it('is the configured key, or in sandbox a random one announced in the log', () => {
    const lines: string[] = [];
    const logger = createLogger('info', {
      write: (line: string) => {
        lines.push(line);
      },
    });
    const given = 'a-secret-of-at-least-thirty-two-characters';
    expect(resolveOtpSecret({ SANDBOX: false, OTP_HASH_SECRET: given }, logger)).toEqual(
      Buffer.from(given),
    );
    expect(lines).toHaveLength(0);
    const made = resolveOtpSecret({ SANDBOX: true }, logger);
    expect(made).toHaveLength(32);
    expect(resolveOtpSecret({ SANDBOX: true }, logger)).not.toEqual(made);
    expect(lines.some((l) => l.includes('OTP_HASH_SECRET is not set'))).toBe(true);
  });
});
