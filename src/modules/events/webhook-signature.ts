import { createHmac, timingSafeEqual } from 'node:crypto';

/** How far a signature's timestamp may be from the receiver's clock (replay window). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * The `Webhook-Signature` header value: `t=<unix seconds>` then one `v1=<hex HMAC-SHA256>` per
 * secret, over `"<t>.<raw body>"`. During a secret rotation both secrets sign, the new one first.
 */
export function signWebhook(
  secrets: readonly string[],
  rawBody: string,
  timestamp = Math.floor(Date.now() / 1000),
): string {
  const signatures = secrets.map(
    (secret) =>
      `v1=${createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`,
  );
  return [`t=${timestamp}`, ...signatures].join(',');
}

/**
 * What a merchant runs on each delivery (docs/webhooks.md shows the same code): true when one
 * of the header's v1 signatures matches `secret` and its timestamp is within the tolerance.
 * `rawBody` must be the bytes as received, before any JSON parsing.
 */
export function verifyWebhook(
  secret: string,
  header: string,
  rawBody: string,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  const parts = header.split(',').map((p) => p.trim().split('='));
  const t = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest();
  return parts
    .filter(([k, v]) => k === 'v1' && v !== undefined && /^[0-9a-f]{64}$/.test(v))
    .some(([, v]) => timingSafeEqual(Buffer.from(v!, 'hex'), expected));
}
