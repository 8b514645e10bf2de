import type { Request, RequestHandler, Response } from 'express';
import { AppError } from '../../errors.js';
import { authOf, type AuthFailureBrake } from '../../http/auth.js';
import type { RateLimitService } from './rate-limit-service.js';
import { policyWindowSeconds, type RateLimitDecision } from './rate-limit-types.js';

export const RATE_LIMIT_POLICY_HEADER = 'RateLimit-Policy';
export const RATE_LIMIT_HEADER = 'RateLimit';

/** `"per-key";q=100;w=2` — the draft-ietf-httpapi-ratelimit-headers quota policy item. */
export function policyItem(decision: RateLimitDecision): string {
  const { policy } = decision;
  return `"${policy.name}";q=${policy.burst};w=${policyWindowSeconds(policy)}`;
}

/** `"per-key";r=37;t=1` — remaining quota and seconds until more is available. */
export function stateItem(decision: RateLimitDecision): string {
  return `"${decision.policy.name}";r=${decision.remaining};t=${decision.nextUnitSeconds}`;
}

function appendItem(res: Response, header: string, item: string): string {
  const previous = res.getHeader(header);
  const value = typeof previous === 'string' && previous !== '' ? `${previous}, ${item}` : item;
  res.setHeader(header, value);
  return value;
}

/** Adds a decision's policy and state to the response's RateLimit-Policy and RateLimit lists. */
export function appendRateLimitHeaders(
  res: Response,
  decision: RateLimitDecision,
): Record<string, string> {
  return {
    [RATE_LIMIT_POLICY_HEADER]: appendItem(res, RATE_LIMIT_POLICY_HEADER, policyItem(decision)),
    [RATE_LIMIT_HEADER]: appendItem(res, RATE_LIMIT_HEADER, stateItem(decision)),
  };
}

/** The 429 for a limited decision; `headers` are the RateLimit fields the answer carries. */
export function rateLimitedError(
  decision: RateLimitDecision,
  detail: string,
  headers: Record<string, string> = {
    [RATE_LIMIT_POLICY_HEADER]: policyItem(decision),
    [RATE_LIMIT_HEADER]: stateItem(decision),
  },
): AppError {
  return new AppError('rate_limited', `${detail} Retry after ${decision.retryAfterSeconds} s.`, {
    headers: { ...headers, 'Retry-After': String(decision.retryAfterSeconds) },
  });
}

/** Per-API-key limit for every authenticated route; mount right after `authenticate`. */
export function perKeyRateLimit(rateLimits: RateLimitService): RequestHandler {
  return async (req, res, next) => {
    const decision = await rateLimits.perKey(authOf(req));
    const headers = appendRateLimitHeaders(res, decision);
    if (!decision.allowed) {
      throw rateLimitedError(decision, 'This API key has used its request quota.', headers);
    }
    next();
  };
}

/**
 * Charge velocity per subscriber, shared by all merchants: throws 429 `rate_limited` when the
 * MSISDN has had too many charge attempts. Call it once per charge attempt, after idempotent
 * replays are answered, so a replay costs nothing; with `attempt` (the idempotency owner and key)
 * a duplicate of an attempt still running is not counted twice. Allowed attempts add no headers: the remaining
 * count would tell one merchant how often others charged the subscriber.
 */
export async function enforceChargeVelocity(
  rateLimits: RateLimitService,
  res: Response,
  msisdn: string,
  attempt?: { ownerId: string; key: string },
): Promise<RateLimitDecision> {
  const decision = await rateLimits.chargeVelocity(msisdn, attempt);
  if (!decision.allowed) {
    throw rateLimitedError(
      decision,
      'Too many charge attempts for this subscriber.',
      appendRateLimitHeaders(res, decision),
    );
  }
  return decision;
}

function clientIp(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

/**
 * The auth-failure brake per client address, for `authenticate(…)`. Only failures reach it, so a
 * caller with a valid key costs it nothing (no Redis round trip) and is never refused by it.
 */
export function createAuthFailureBrake(rateLimits: RateLimitService): AuthFailureBrake {
  const detail = 'Too many failed authentication attempts from this address.';
  return {
    async recordFailure(req) {
      const decision = await rateLimits.recordAuthFailure(clientIp(req));
      if (!decision.allowed) throw rateLimitedError(decision, detail);
    },
  };
}
