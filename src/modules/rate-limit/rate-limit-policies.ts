import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Pool } from '../../db/pool.js';
import type { Logger } from '../../logger.js';
import { findRateLimitOverride } from './rate-limit-repo.js';
import {
  policyPerMinute,
  policyPerSecond,
  policyPerWindow,
  type RateLimitPolicy,
} from './rate-limit-types.js';

/** The shape of the `rate_limit` column on merchants, carriers and api_keys. */
export const rateLimitOverrideSchema = z.strictObject({
  rate: z.number().positive().max(1_000_000),
  burst: z.number().int().min(1).max(1_000_000),
});

export interface RateLimitPolicies {
  /** The per-key policy for an owner: its override if it has one, else the configured default. */
  perKey(ownerId: string): Promise<RateLimitPolicy>;
  readonly defaultPerKey: RateLimitPolicy;
  readonly msisdn: RateLimitPolicy;
  readonly authFailure: RateLimitPolicy;
  /** Console sign-in failures per email, per client address, and second-factor failures per operator. */
  readonly signInEmail: RateLimitPolicy;
  readonly signInAddress: RateLimitPolicy;
  readonly secondFactor: RateLimitPolicy;
}

const MAX_CACHED_OWNERS = 10_000;

/**
 * Policies from the environment, with per-owner overrides read from the database and kept in
 * process for RATE_LIMIT_POLICY_CACHE_MS, so a request costs a map lookup, not a query.
 */
export function createRateLimitPolicies(deps: {
  pool: Pool;
  config: Config;
  logger: Logger;
}): RateLimitPolicies {
  const { pool, config, logger } = deps;
  const defaultPerKey = policyPerSecond(
    'per-key',
    config.RATE_LIMIT_KEY_RATE,
    config.RATE_LIMIT_KEY_BURST,
  );
  const ttlMs = config.RATE_LIMIT_POLICY_CACHE_MS;
  const cache = new Map<string, { policy: Promise<RateLimitPolicy>; expiresAt: number }>();

  async function load(ownerId: string): Promise<RateLimitPolicy> {
    let stored: unknown;
    try {
      stored = await findRateLimitOverride(pool, ownerId);
    } catch (err) {
      logger.warn({ err, owner_id: ownerId }, 'rate limit override unreadable; using the default');
      return defaultPerKey;
    }
    if (stored === null) return defaultPerKey;
    const parsed = rateLimitOverrideSchema.safeParse(stored);
    if (!parsed.success) {
      logger.warn({ owner_id: ownerId }, 'rate limit override malformed; using the default');
      return defaultPerKey;
    }
    return policyPerSecond('per-key', parsed.data.rate, parsed.data.burst);
  }

  return {
    defaultPerKey,
    msisdn: policyPerMinute('msisdn', config.RATE_LIMIT_MSISDN_PER_MINUTE),
    authFailure: policyPerMinute('auth-failures', config.RATE_LIMIT_AUTH_FAILURES_PER_MINUTE),
    signInEmail: policyPerWindow(
      'sign-in-email',
      config.SIGN_IN_FAILURES_PER_EMAIL,
      config.SIGN_IN_BRAKE_WINDOW_SECONDS,
    ),
    signInAddress: policyPerWindow(
      'sign-in-address',
      config.SIGN_IN_FAILURES_PER_ADDRESS,
      config.SIGN_IN_BRAKE_WINDOW_SECONDS,
    ),
    secondFactor: policyPerWindow(
      'second-factor',
      config.SIGN_IN_FAILURES_PER_EMAIL,
      config.SIGN_IN_BRAKE_WINDOW_SECONDS,
    ),
    perKey(ownerId) {
      if (ttlMs === 0) return load(ownerId);
      const now = Date.now();
      const hit = cache.get(ownerId);
      if (hit && hit.expiresAt > now) return hit.policy;
      if (cache.size >= MAX_CACHED_OWNERS) {
        for (const [owner, entry] of cache) if (entry.expiresAt <= now) cache.delete(owner);
        if (cache.size >= MAX_CACHED_OWNERS) cache.clear();
      }
      // The promise is cached, so concurrent first requests of an owner share one query.
      const policy = load(ownerId);
      cache.set(ownerId, { policy, expiresAt: now + ttlMs });
      return policy;
    },
  };
}
