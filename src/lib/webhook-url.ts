import net from 'node:net';
import { AppError } from '../errors.js';

/** Loopback, private, link-local, CGNAT, unspecified and multicast ranges (IPv4 and IPv6). */
export function isNonPublicAddress(ip: string): boolean {
  const v = net.isIP(ip);
  if (v === 4) {
    const parts = ip.split('.').map(Number);
    const [a = 0, b = 0] = parts;
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 198 && (b === 18 || b === 19)) ||
      a >= 224
    );
  }
  if (v === 6) {
    const lower = ip.toLowerCase();
    if (lower === '::' || lower === '::1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    if (mapped?.[1]) return isNonPublicAddress(mapped[1]);
    return /^(fc|fd|fe8|fe9|fea|feb|ff)/.test(lower);
  }
  return false;
}

/**
 * Checks a merchant webhook URL: http(s) only, no credentials, and outside sandbox no loopback or
 * private hosts. Names are resolved again at delivery time, where the same rule applies.
 */
export function assertWebhookUrl(raw: string, sandbox: boolean, param = 'webhook_url'): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AppError('validation_failed', 'The webhook URL is not a valid absolute URL.', {
      param,
    });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AppError('validation_failed', 'Webhook URLs must use http or https.', { param });
  }
  if (url.username || url.password) {
    throw new AppError('validation_failed', 'Webhook URLs may not carry credentials.', { param });
  }
  if (!sandbox) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (host === 'localhost' || host.endsWith('.localhost') || isNonPublicAddress(host)) {
      throw new AppError(
        'validation_failed',
        'Webhook URLs may not point at loopback or private addresses.',
        {
          param,
        },
      );
    }
  }
  return url.toString();
}
