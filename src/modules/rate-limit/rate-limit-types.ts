/** Which brake made a decision; a metric label and part of the log context. */
export type LimiterName =
  'per_key' | 'msisdn' | 'auth_failure' | 'sign_in_email' | 'sign_in_address' | 'second_factor';

/** Where a decision was made: the shared Redis, or this process (no Redis, or Redis down). */
export type LimiterBackend = 'redis' | 'memory';

/**
 * A GCRA policy: `burst` units may be used at once, and one unit comes back every
 * `emissionIntervalUs` microseconds (so the sustained rate is 1e6 / emissionIntervalUs per second).
 */
export interface RateLimitPolicy {
  /** Name in the RateLimit-Policy / RateLimit headers, e.g. "per-key". */
  name: string;
  burst: number;
  emissionIntervalUs: number;
}

/** One GCRA evaluation of one bucket. */
export interface GcraRequest {
  key: string;
  emissionIntervalUs: number;
  burst: number;
  /** Units this request takes, 0 ≤ cost ≤ burst. */
  cost: number;
  /** false: only look whether `cost` units would be allowed, store nothing. */
  record: boolean;
  /** Overrides the clock (microseconds); only tests pass it. */
  nowUs?: number;
  /**
   * Names what is being counted, when one thing may be presented more than once (a charge
   * attempt retried under its idempotency key): once it has taken its units, it is allowed
   * again without taking more until the bucket could be full again.
   */
  onceKey?: string;
}

/** Gives back units a recorded request took (an attempt that turned out not to count). */
export interface GcraRefund {
  key: string;
  emissionIntervalUs: number;
  cost: number;
  /** Overrides the clock (microseconds); only tests pass it. */
  nowUs?: number;
}

/** What the GCRA says, in the same shape from Redis and from the in-process limiter. */
export interface GcraResult {
  allowed: boolean;
  /** Whole units still available after this request. */
  remaining: number;
  /** 0 when allowed; otherwise how long until `cost` units are available. */
  retryAfterUs: number;
  /** How long until the bucket is full again (nothing used). */
  resetUs: number;
}

export interface RateLimitDecision {
  limiter: LimiterName;
  policy: RateLimitPolicy;
  backend: LimiterBackend;
  allowed: boolean;
  remaining: number;
  /** Whole seconds, ≥ 1 when limited; 0 when allowed. */
  retryAfterSeconds: number;
  /** The `t` of the RateLimit header: whole seconds until more quota is available (0 when full). */
  nextUnitSeconds: number;
}

/** A policy from requests per second and burst, e.g. per API key 50/s with burst 100. */
export function policyPerSecond(
  name: string,
  ratePerSecond: number,
  burst: number,
): RateLimitPolicy {
  return { name, burst, emissionIntervalUs: Math.max(1, Math.round(1e6 / ratePerSecond)) };
}

/** A policy of `count` units per minute, all of which may be used at once. */
export function policyPerMinute(name: string, count: number): RateLimitPolicy {
  return { name, burst: count, emissionIntervalUs: Math.max(1, Math.round(60e6 / count)) };
}

/** A policy of `count` units per `windowSeconds`, all of which may be used at once. */
export function policyPerWindow(
  name: string,
  count: number,
  windowSeconds: number,
): RateLimitPolicy {
  return {
    name,
    burst: count,
    emissionIntervalUs: Math.max(1, Math.round((windowSeconds * 1e6) / count)),
  };
}

/** The `w` of RateLimit-Policy: seconds for an empty bucket to fill again. */
export function policyWindowSeconds(policy: RateLimitPolicy): number {
  return Math.max(1, Math.ceil((policy.burst * policy.emissionIntervalUs) / 1e6));
}

/** Turns a raw GCRA result into the decision the HTTP layer speaks about. */
export function toDecision(
  limiter: LimiterName,
  policy: RateLimitPolicy,
  backend: LimiterBackend,
  result: GcraResult,
): RateLimitDecision {
  const retryAfterSeconds = result.allowed ? 0 : Math.max(1, Math.ceil(result.retryAfterUs / 1e6));
  let nextUnitSeconds = 0;
  if (!result.allowed) {
    nextUnitSeconds = retryAfterSeconds;
  } else if (result.remaining < policy.burst) {
    const available = policy.burst * policy.emissionIntervalUs - result.resetUs;
    const untilNext = policy.emissionIntervalUs - (available % policy.emissionIntervalUs);
    nextUnitSeconds = Math.max(1, Math.ceil(untilNext / 1e6));
  }
  return {
    limiter,
    policy,
    backend,
    allowed: result.allowed,
    remaining: Math.max(0, result.remaining),
    retryAfterSeconds,
    nextUnitSeconds,
  };
}
