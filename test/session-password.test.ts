import { describe, expect, it } from 'vitest';
import {
  OWASP_SCRYPT,
  assertPasswordAcceptable,
  createPasswordHasher,
} from '../src/modules/sessions/sessions-password.js';

describe('password hashes', () => {
  it('are scrypt with the OWASP parameters by default, in a PHC string that carries them', async () => {
    expect(OWASP_SCRYPT).toEqual({ ln: 17, r: 8, p: 1 });
    const hasher = createPasswordHasher();
    const hash = await hasher.hash('correct horse battery');
    expect(hash).toMatch(/^\$scrypt\$ln=17,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await hasher.verify('correct horse battery', hash)).toEqual({ ok: true, rehash: false });
    expect(await hasher.verify('correct horse batterY', hash)).toEqual({
      ok: false,
      rehash: false,
    });
    // Two hashes of one password differ by their salt.
    expect(await hasher.hash('correct horse battery')).not.toBe(hash);
  });

  it('verify with their own parameters and ask for a rehash when those are not current', async () => {
    const old = await createPasswordHasher({ ln: 14, r: 8, p: 2 }).hash('a password of old');
    const current = createPasswordHasher({ ln: 15, r: 8, p: 1 });
    expect(await current.verify('a password of old', old)).toEqual({ ok: true, rehash: true });
  });

  it('treat a malformed or absurdly costly stored hash as no match, without doing the work', async () => {
    const hasher = createPasswordHasher({ ln: 14, r: 8, p: 1 });
    const salt = 'c2FsdHNhbHRzYWx0c2FsdA';
    const key = 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U';
    for (const stored of [
      '',
      'plain',
      `$scrypt$ln=30,r=8,p=1$${salt}$${key}`,
      `$argon2id$v=19$${salt}`,
    ]) {
      expect(await hasher.verify('anything at all', stored)).toEqual({ ok: false, rehash: true });
    }
  });

  it('spend the same work on an unknown account and never match', async () => {
    const hasher = createPasswordHasher({ ln: 14, r: 8, p: 1 });
    expect(await hasher.verifyNothing('anything at all')).toBe(false);
  });
});

describe('the password policy', () => {
  const op = { email: 'Minh.Tran@example.vn', name: 'Tran Minh' };
  it.each([
    ['eleven char', 'at least 12'],
    ['x'.repeat(129), 'at most 128'],
    ['minh.tran@example.vn', 'email'],
    ['my MINH.TRAN secret', 'email'],
    ['hello tranminh there', 'name'],
    ['............', 'repeated'],
    ['zyxwvutsrqponm', 'consecutive'],
    ['123456789012', 'common'],
    ['line\nbreak in it', 'control'],
    ['lone \ud800 surrogate', 'surrogate'],
  ])('refuses %j (%s)', (password, why) => {
    expect(() => assertPasswordAcceptable(password, op)).toThrow(new RegExp(why.split(' ')[0]!));
  });

  it.each([
    'twelve chars',
    'Đây là mật khẩu dài',
    'correct horse battery staple',
    '🔐🔑🔒🔓🔐🔑🔒🔓🔐🔑🔒🔓',
  ])('accepts %j', (password) => {
    expect(() => assertPasswordAcceptable(password, op)).not.toThrow();
  });
});
