import { describe, expect, it } from 'vitest';
import { TOTP, totpCode, verifyTotp } from '../src/modules/sessions/sessions-totp.js';

// RFC 6238 Appendix B: SHA-1, T0 = 0, X = 30 s, 8 digits, the ASCII secret "12345678901234567890".
const SECRET = new TextEncoder().encode('12345678901234567890');
const VECTORS: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

describe('TOTP as configured for console sign-in', () => {
  it('is RFC 6238 with SHA-1, 30-second steps from the Unix epoch', () => {
    expect(TOTP).toEqual({ algorithm: 'sha1', digits: 6, period: 30, t0: 0 });
  });

  it.each(VECTORS)('at T = %i gives the RFC 6238 Appendix B code %s', async (time, code) => {
    expect(await totpCode(SECRET, time, 8)).toBe(code);
  });

  it('gives the 6-digit codes as the last six digits of the same values', async () => {
    for (const [time, code] of VECTORS) expect(await totpCode(SECRET, time)).toBe(code.slice(2));
  });

  it('accepts a code one step either side of now and no further, and names its step', async () => {
    const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    const now = 1_800_000_015;
    const step = Math.floor(now / 30);
    for (const offset of [-1, 0, 1]) {
      const code = await totpCode(secret, now + offset * 30);
      expect(await verifyTotp(secret, code, now)).toBe(step + offset);
    }
    for (const offset of [-3, -2, 2, 3]) {
      const code = await totpCode(secret, now + offset * 30);
      // A code two steps away may collide with a near one by chance (1 in 10^6 per step).
      const near = await Promise.all([-1, 0, 1].map((o) => totpCode(secret, now + o * 30)));
      if (!near.includes(code)) expect(await verifyTotp(secret, code, now)).toBeUndefined();
    }
  });

  it('refuses anything but six digits without asking the library', async () => {
    const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    for (const code of ['', '12345', '1234567', '12345a', ' 123456', '１２３４５６']) {
      expect(await verifyTotp(secret, code)).toBeUndefined();
    }
  });
});
