import { createHash, randomBytes } from 'node:crypto';
import supertest from 'supertest';
import { expect } from 'vitest';
import type { Role } from '../../src/http/context.js';
import { newId } from '../../src/lib/ids.js';
import { createPasswordHasher } from '../../src/modules/sessions/sessions-password.js';
import { totpCode } from '../../src/modules/sessions/sessions-totp.js';
import { randomSuffix, type Harness } from './harness.js';

export interface OperatorFixture {
  id: string;
  email: string;
  name: string;
  role: Role;
  ownerId: string | null;
  password: string;
  /** The confirmed TOTP secret, when made with `totp: true`. */
  totpSecret?: string;
}

/**
 * An operator inserted straight into the table (the admin API for operators is not what these
 * tests are about), with a password set unless `password: null`, and a confirmed authenticator
 * with `totp: true`.
 */
export async function newOperator(
  h: Harness,
  options: {
    role?: Role;
    ownerId?: string;
    password?: string | null;
    totp?: boolean;
    setupToken?: string;
    setupExpiresInSeconds?: number;
  } = {},
): Promise<OperatorFixture> {
  const role = options.role ?? 'admin';
  const ownerId =
    role === 'merchant' || role === 'carrier'
      ? (options.ownerId ?? newId(role === 'merchant' ? 'mer' : 'car'))
      : null;
  const suffix = randomSuffix();
  const email = `op-${suffix}@example.test`;
  const name = `Operator ${suffix}`;
  const password = options.password === undefined ? `correct horse ${suffix}` : options.password;
  const hasher = createPasswordHasher({ ln: h.c.config.PASSWORD_SCRYPT_LOG2_N, r: 8, p: 1 });
  const totpSecret = options.totp ? randomBase32() : undefined;
  const id = newId('op');
  await h.c.pool.query(
    `INSERT INTO operators (id, email, name, role, owner_id, password_hash, totp_secret,
                            totp_enabled_at, setup_token_hash, setup_expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10))`,
    [
      id,
      email,
      name,
      role,
      ownerId,
      password === null ? null : await hasher.hash(password),
      totpSecret ?? null,
      totpSecret ? new Date() : null,
      options.setupToken ? createHash('sha256').update(options.setupToken).digest() : null,
      options.setupToken ? (options.setupExpiresInSeconds ?? 3600) : null,
    ],
  );
  return { id, email, name, role, ownerId, password: password ?? '', totpSecret };
}

function randomBase32(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  return Array.from(randomBytes(32), (b) => alphabet.charAt(b % 32)).join('');
}

/** A fresh set-up token, as the link carries it. */
export const newSetupToken = () => randomBytes(32).toString('base64url');

/** A random client address, so each test's brakes are its own (the harness trusts the proxy). */
export function randomAddress(): string {
  const b = randomBytes(3);
  return `10.${b[0]}.${b[1]}.${b[2]}`;
}

/** A cookie-keeping client coming from its own address. */
export function browser(h: Harness, address = randomAddress()) {
  const agent = supertest.agent(h.app);
  agent.set('X-Forwarded-For', address);
  return agent;
}

export type Browser = ReturnType<typeof browser>;

/** The TOTP code of `secret`, `stepsAhead` 30-second steps from now (one is within the drift). */
export function codeFor(secret: string, stepsAhead = 0): Promise<string> {
  return totpCode(secret, Math.floor(Date.now() / 1000) + stepsAhead * 30);
}

export async function signIn(b: Browser, op: OperatorFixture) {
  const res = await b.post('/v1/session').send({ email: op.email, password: op.password });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { stage: string; csrf_token: string; id: string; totp_enabled: boolean };
}

/** Signs in and passes the second factor with a code `stepsAhead` steps on; the active session. */
export async function signInActive(b: Browser, op: OperatorFixture, stepsAhead = 0) {
  const first = await signIn(b, op);
  if (first.stage === 'active') return first;
  if (!op.totpSecret) {
    const enrol = await b.post('/v1/session/totp/enrol').set('X-CSRF-Token', first.csrf_token);
    expect(enrol.status, JSON.stringify(enrol.body)).toBe(200);
    op.totpSecret = enrol.body.secret as string;
  }
  const res = await b
    .post('/v1/session/second-factor')
    .set('X-CSRF-Token', first.csrf_token)
    .send({ code: await codeFor(op.totpSecret, stepsAhead) });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { stage: string; csrf_token: string; id: string; totp_enabled: boolean };
}

/** The value of the session cookie a response set, and its attributes. */
export function setCookieOf(res: { headers: Record<string, unknown> }): string | undefined {
  const header = res.headers['set-cookie'] as string[] | string | undefined;
  const all = header === undefined ? [] : Array.isArray(header) ? header : [header];
  return all.find((c) => /^(__Host-)?dcb_session=/.test(c));
}
