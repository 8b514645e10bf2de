import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Redis } from 'ioredis';
import type { Config } from '../../config.js';
import type { Pool } from '../../db/pool.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import {
  createLimiterBackendRouter,
  type LimiterBackendRouter,
  type LimiterEvaluation,
} from './rate-limit-backend.js';
import { createRateLimitPolicies, type RateLimitPolicies } from './rate-limit-policies.js';
import type { RateLimitDecision } from './rate-limit-types.js';

/** One attempt taken from several budgets at once (a sign-in: its email's and its address's). */
export interface BrakedAttempt {
  /** The budget that refused, when one did; nothing is then taken from any of them. */
  refused?: RateLimitDecision;
  /** Gives the units back: the attempt succeeded, so it is no failure to count. */
  release(): Promise<void>;
}

export interface RateLimitService {
  /** Takes one request from an API key's budget; the policy is its owner's. */
  perKey(caller: { keyId: string; ownerId: string }): Promise<RateLimitDecision>;
  /**
   * Takes one charge attempt from a subscriber's budget, shared by every merchant. An `attempt`
   * (the request's idempotency owner and key) is counted once: presented again while the budget
   * remembers it, it is allowed without taking another unit.
   */
  chargeVelocity(
    msisdn: string,
    attempt?: { ownerId: string; key: string },
  ): Promise<RateLimitDecision>;
  /** Takes one failed authentication from a client address's budget. */
  recordAuthFailure(clientIp: string): Promise<RateLimitDecision>;
  /**
   * Takes a console sign-in attempt from the email's and the client address's failure budgets
   * before the password is checked, so concurrent guesses cannot all slip past a check made
   * before any of them failed; a successful sign-in gives its units back.
   */
  signInAttempt(email: string, clientIp: string): Promise<BrakedAttempt>;
  /** Likewise for a second-factor code, per operator. */
  secondFactorAttempt(operatorId: string): Promise<BrakedAttempt>;
  readonly policies: RateLimitPolicies;
  readonly backend: LimiterBackendRouter;
}

/**
 * The bucket a client address falls in: IPv4 per address, IPv6 per /64 (one subscriber line
 * usually holds a whole /64, so per-address buckets would be free to multiply).
 */
export function clientAddressBucket(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return mapped[1];
  if (isIP(ip) !== 6) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

export function createRateLimitService(deps: {
  redis: Redis | null;
  pool: Pool;
  config: Config;
  logger: Logger;
  metrics: Metrics;
}): RateLimitService {
  const { config } = deps;
  const policies = createRateLimitPolicies(deps);
  const backend = createLimiterBackendRouter({
    redis: deps.redis,
    logger: deps.logger,
    metrics: deps.metrics,
    retryMs: config.RATE_LIMIT_REDIS_RETRY_MS,
  });
  const prefix = config.RATE_LIMIT_KEY_PREFIX;
  // `{…}` is the hash tag: each bucket is one key, so the script never crosses cluster slots.
  const bucket = (scope: string, id: string) => `${prefix}:{${scope}:${id}}`;

  /** Takes one unit from each budget in turn; a refusal gives back those already taken. */
  async function takeAll(evaluations: LimiterEvaluation[]): Promise<BrakedAttempt> {
    const taken: { evaluation: LimiterEvaluation; backend: RateLimitDecision['backend'] }[] = [];
    const release = async () => {
      for (const t of taken.splice(0)) await backend.refund(t.evaluation, t.backend);
    };
    for (const evaluation of evaluations) {
      const decision = await backend.evaluate(evaluation);
      if (!decision.allowed) {
        await release();
        return { refused: decision, release: () => Promise.resolve() };
      }
      taken.push({ evaluation, backend: decision.backend });
    }
    return { release };
  }

  // Hashed so that emails never appear in Redis.
  const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 32);

  return {
    policies,
    backend,

    signInAttempt(email, clientIp) {
      return takeAll([
        {
          limiter: 'sign_in_email',
          policy: policies.signInEmail,
          key: bucket('signin-email', digest(email.toLowerCase())),
        },
        {
          limiter: 'sign_in_address',
          policy: policies.signInAddress,
          key: bucket('signin-address', clientAddressBucket(clientIp)),
        },
      ]);
    },

    secondFactorAttempt(operatorId) {
      return takeAll([
        {
          limiter: 'second_factor',
          policy: policies.secondFactor,
          key: bucket('second-factor', operatorId),
        },
      ]);
    },

    async perKey({ keyId, ownerId }) {
      return backend.evaluate({
        limiter: 'per_key',
        policy: await policies.perKey(ownerId),
        key: bucket('key', keyId),
      });
    },

    chargeVelocity(msisdn, attempt) {
      // Hashed so subscriber numbers (and merchants' keys) never appear in Redis.
      const id = createHash('sha256').update(msisdn).digest('hex').slice(0, 32);
      const attemptId =
        attempt &&
        createHash('sha256')
          .update(`${attempt.ownerId}\x1f${attempt.key}`)
          .digest('hex')
          .slice(0, 32);
      return backend.evaluate({
        limiter: 'msisdn',
        policy: policies.msisdn,
        key: bucket('msisdn', id),
        // The same hash tag as the bucket, so both keys live in one cluster slot.
        onceKey: attemptId && `${prefix}:{msisdn:${id}}:attempt:${attemptId}`,
      });
    },

    async recordAuthFailure(clientIp) {
      const address = clientAddressBucket(clientIp);
      return backend.evaluate({
        limiter: 'auth_failure',
        policy: policies.authFailure,
        key: bucket('auth', address),
      });
    },
  };
}
