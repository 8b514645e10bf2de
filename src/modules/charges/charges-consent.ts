import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../../logger.js';
import type { CarrierRow } from '../carriers/carriers-types.js';
import type { MerchantRow } from '../merchants/merchants-types.js';
import { formatAmount } from '../money/money.js';

/** SPEC §4.4: a one-time code is valid 5 minutes and allows at most 3 attempts. */
export const OTP_TTL_SECONDS = 300;
export const OTP_MAX_ATTEMPTS = 3;

/** Consent applies at or above the carrier's threshold, or always for an `always_otp` merchant. */
export function needsConsent(
  merchant: Pick<MerchantRow, 'consent'>,
  carrier: Pick<CarrierRow, 'otp_threshold'>,
  amount: bigint,
): boolean {
  if (merchant.consent === 'always_otp') return true;
  // loadChargeAttempt reads rows through to_jsonb: bigint columns arrive as numbers there.
  return carrier.otp_threshold !== null && amount >= BigInt(carrier.otp_threshold);
}

/** A uniformly random 6-digit code. */
export function newOtpCode(): string {
  return randomInt(0, 1_000_000).toString().padStart(6, '0');
}

/**
 * The stored form of a code: HMAC-SHA256 under the server secret, bound to the charge, so the
 * table alone (a backup, a replica) does not let anyone brute-force the million possible codes.
 */
export function otpHash(secret: Buffer, chargeId: string, code: string): Buffer {
  return createHmac('sha256', secret).update(`${chargeId}:${code}`).digest();
}

/** Compares in constant time, so response timing says nothing about how close a guess was. */
export function otpMatches(
  secret: Buffer,
  chargeId: string,
  code: string,
  stored: Buffer,
): boolean {
  const candidate = otpHash(secret, chargeId, code);
  return candidate.length === stored.length && timingSafeEqual(candidate, stored);
}

/** The SMS text: who asks for how much, so the subscriber knows what the code approves. */
export function otpMessage(merchantName: string, amount: bigint, currency: string, code: string) {
  const name = merchantName.length > 40 ? `${merchantName.slice(0, 39)}…` : merchantName;
  return (
    `${name} asks to charge ${formatAmount(amount, currency)} ${currency} to your phone account. ` +
    `Your code: ${code}. Valid ${OTP_TTL_SECONDS / 60} minutes. Never share it.`
  );
}

/**
 * The key of the code hashes: OTP_HASH_SECRET, or else a random key of this process. The server
 * refuses to start outside sandbox without the variable (assertServerConfig); the admin CLI and
 * tests, which issue no codes to real subscribers, may go without. In sandbox the stand-in is
 * announced, because codes then cannot be confirmed after a restart or on another instance.
 */
export function resolveOtpSecret(
  config: { OTP_HASH_SECRET?: string; SANDBOX: boolean },
  logger: Logger,
): Buffer {
  if (config.OTP_HASH_SECRET !== undefined) return Buffer.from(config.OTP_HASH_SECRET, 'utf8');
  if (config.SANDBOX) {
    logger.warn(
      'OTP_HASH_SECRET is not set: one-time codes are hashed with a random key of this process ' +
        '(sandbox), so a code cannot be confirmed after a restart or on another instance',
    );
  }
  return randomBytes(32);
}
