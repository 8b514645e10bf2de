import { generate, generateSecret, generateURI, verify } from 'otplib';

/**
 * TOTP as every authenticator app speaks it (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps
 * from the Unix epoch, a 160-bit secret in base32. One step of clock drift either way is
 * accepted; the step a code belongs to is returned so that it can be used only once.
 */
export const TOTP = { algorithm: 'sha1', digits: 6, period: 30, t0: 0 } as const;

/** Steps of drift accepted either side of now, as otplib's epochTolerance in seconds. */
const TOLERANCE_SECONDS = TOTP.period;

export function newTotpSecret(): string {
  return generateSecret({ length: 20 });
}

export function totpUri(issuer: string, account: string, secret: string): string {
  return generateURI({
    issuer,
    label: account,
    secret,
    algorithm: TOTP.algorithm,
    digits: TOTP.digits,
    period: TOTP.period,
  });
}

/**
 * The time step of `code` when it is valid now for `secret`; undefined otherwise. Whether that
 * step was used already is the caller's to decide, under a lock on the operator's row.
 */
export async function verifyTotp(
  secret: string,
  code: string,
  epochSeconds = Math.floor(Date.now() / 1000),
): Promise<number | undefined> {
  if (!/^\d{6}$/.test(code)) return undefined;
  const result = await verify({
    ...TOTP,
    secret,
    token: code,
    epoch: epochSeconds,
    epochTolerance: TOLERANCE_SECONDS,
  });
  // The functional API types HOTP and TOTP results together; only TOTP's carry timeStep.
  return result.valid && 'timeStep' in result ? result.timeStep : undefined;
}

/** The code for `secret` at a moment (tests, and nothing else, need to make one). */
export function totpCode(secret: string | Uint8Array, epochSeconds: number, digits: 6 | 8 = 6) {
  return generate({ ...TOTP, digits, secret, epoch: epochSeconds });
}
