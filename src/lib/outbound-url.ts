import net from 'node:net';
import { AppError } from '../errors.js';
import type { AddressPolicy, ResolveHost } from './outbound-address.js';

/** Where a tenant-supplied URL may lead: the address policy and the resolver to judge names by. */
export interface OutboundTarget {
  allows: AddressPolicy;
  resolve: ResolveHost;
  /** How long registration waits for DNS before accepting the name unjudged (default 3 s). */
  resolveTimeoutMs?: number;
}

/**
 * The IP literal a parsed URL names, or null for a DNS name. WHATWG URL parsing has already
 * turned decimal, octal, hex, short, percent-encoded and full-width IPv4 spellings into a dotted
 * quad and IPv6 into its compressed form, so this sees only canonical literals.
 */
export function literalAddress(url: URL): string | null {
  const host = url.hostname;
  if (host.startsWith('[') && host.endsWith(']')) return host.slice(1, -1);
  return net.isIP(host) === 4 ? host : null;
}

/** RFC 6761: these names mean this machine whatever a resolver answers. */
function isLocalhostName(host: string): boolean {
  const name = host.replace(/\.$/, '');
  return name === 'localhost' || name.endsWith('.localhost');
}

const LOCALHOST_ADDRESSES = ['127.0.0.1', '::1'];

function notAllowed(param: string, detail: string): AppError {
  return new AppError('url_not_allowed', detail, { param });
}

async function resolveWithin(target: OutboundTarget, host: string): Promise<string[] | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), target.resolveTimeoutMs ?? 3000);
  });
  try {
    const answer = await Promise.race([target.resolve(host).catch(() => null), timeout]);
    return answer ? answer.map((a) => a.address) : null;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks a URL the gateway will POST to on a tenant's behalf (a merchant webhook, a carrier SMS
 * endpoint) and returns it normalised. http(s) only, no credentials, and every address the host
 * stands for must pass the policy: an IP literal in any spelling, `localhost` names, and what a
 * name resolves to now. A name that does not resolve yet is accepted: every connection checks
 * the address it actually connects to again, so this check only gives an early, clear answer.
 */
export async function assertOutboundUrl(
  raw: string,
  target: OutboundTarget,
  param: string,
): Promise<string> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AppError('validation_failed', 'The URL is not a valid absolute URL.', { param });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw notAllowed(param, 'Only http and https URLs are allowed.');
  }
  if (url.username || url.password) {
    throw notAllowed(param, 'The URL may not carry credentials (user:password@).');
  }
  const literal = literalAddress(url);
  const addresses = literal
    ? [literal]
    : isLocalhostName(url.hostname)
      ? LOCALHOST_ADDRESSES
      : await resolveWithin(target, url.hostname);
  if (addresses?.some((a) => !target.allows(a))) {
    throw notAllowed(
      param,
      'The URL must lead to a public unicast address; loopback, private, link-local, shared, reserved and IPv4-embedding IPv6 addresses are refused outside sandbox mode.',
    );
  }
  return url.toString();
}
