import type { Redis } from 'ioredis';
import { Counter, Gauge } from 'prom-client';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { createMemoryLimiter, type MemoryLimiter } from './memory-limiter.js';
import { createRedisGcra, type RedisGcra } from './rate-limit-gcra.js';
import {
  toDecision,
  type GcraResult,
  type LimiterBackend,
  type LimiterName,
  type RateLimitDecision,
  type RateLimitPolicy,
} from './rate-limit-types.js';

export interface LimiterEvaluation {
  limiter: LimiterName;
  policy: RateLimitPolicy;
  key: string;
  cost?: number;
  /** false: look only (the auth-failure brake's check). */
  record?: boolean;
  /** See GcraRequest.onceKey. */
  onceKey?: string;
}

/** Evaluates a bucket in Redis, or in process when Redis is absent or failing. */
export interface LimiterBackendRouter {
  evaluate(evaluation: LimiterEvaluation): Promise<RateLimitDecision>;
  /**
   * Gives back the units an allowed, recorded evaluation took, to the backend that decided it. When
   * that was Redis and Redis has failed since, the refund is dropped: the unit stays taken, erring
   * on the side of the brake.
   */
  refund(evaluation: LimiterEvaluation, backend: LimiterBackend): Promise<void>;
  /** True while Redis is configured but decisions are made in process. */
  readonly degraded: boolean;
  readonly memory: MemoryLimiter;
}

export interface RateLimitMetrics {
  decisions: Counter<'limiter' | 'result' | 'backend'>;
  fallbackDecisions: Counter<'limiter'>;
  redisDegraded: Gauge;
}

function createRateLimitMetrics(metrics: Metrics): RateLimitMetrics {
  const registers = [metrics.registry];
  return {
    decisions: new Counter({
      name: 'rate_limit_decisions_total',
      help: 'Rate-limit decisions by limiter, result (allowed, limited) and backend (redis, memory).',
      labelNames: ['limiter', 'result', 'backend'],
      registers,
    }),
    fallbackDecisions: new Counter({
      name: 'rate_limit_fallback_decisions_total',
      help: 'Decisions made by the in-process limiter because Redis was unavailable.',
      labelNames: ['limiter'],
      registers,
    }),
    redisDegraded: new Gauge({
      name: 'rate_limit_redis_degraded',
      help: '1 while Redis is configured but unavailable and limits are enforced in process.',
      registers,
    }),
  };
}

/**
 * Redis first; on any Redis failure the in-process GCRA decides instead, so a Redis outage never
 * turns into a 429 or a 500. After a failure Redis is skipped for `retryMs` (so requests do not
 * each wait for a command timeout), then one request probes it; the first answer ends the outage.
 * One warning per outage, one info when Redis is back.
 */
export function createLimiterBackendRouter(deps: {
  redis: Redis | null;
  logger: Logger;
  metrics: Metrics;
  retryMs: number;
}): LimiterBackendRouter {
  const { redis, logger, retryMs } = deps;
  const metrics = createRateLimitMetrics(deps.metrics);
  const memory = createMemoryLimiter();
  const remote: RedisGcra | null = redis ? createRedisGcra(redis) : null;
  let degraded = false;
  let probeAt = 0;

  function redisWorthTrying(): boolean {
    if (!redis || redis.status !== 'ready') return false;
    if (!degraded) return true;
    const now = Date.now();
    if (now < probeAt) return false;
    // This request probes; the others stay in process until it has an answer.
    probeAt = now + retryMs;
    return true;
  }

  function outage(reason: string, err?: unknown): void {
    // A failed command may mean a hung server: wait before the next probe. A closed connection
    // needs no wait, because ioredis reports 'ready' only once it has reconnected.
    if (err !== undefined) probeAt = Date.now() + retryMs;
    if (degraded) return;
    degraded = true;
    metrics.redisDegraded.set(1);
    logger.warn(
      { err, reason },
      'Redis unavailable: rate limits are enforced in process until it answers again',
    );
  }

  function recovered(): void {
    if (!degraded) return;
    degraded = false;
    probeAt = 0;
    metrics.redisDegraded.set(0);
    logger.info('Redis answers again: rate limits are enforced in Redis');
  }

  function decided(
    { limiter, policy }: LimiterEvaluation,
    backend: LimiterBackend,
    result: GcraResult,
  ): RateLimitDecision {
    const decision = toDecision(limiter, policy, backend, result);
    metrics.decisions.inc({
      limiter,
      result: decision.allowed ? 'allowed' : 'limited',
      backend,
    });
    if (backend === 'memory' && redis) metrics.fallbackDecisions.inc({ limiter });
    return decision;
  }

  return {
    memory,
    get degraded() {
      return degraded;
    },
    async refund(evaluation, where) {
      const refund = {
        key: evaluation.key,
        emissionIntervalUs: evaluation.policy.emissionIntervalUs,
        cost: evaluation.cost ?? 1,
      };
      if (where === 'redis' && remote && redisWorthTrying()) {
        try {
          await remote.refund(refund);
          recovered();
          return;
        } catch (err) {
          outage('command failed', err);
          return;
        }
      }
      if (where === 'memory') memory.refund(refund);
    },
    async evaluate(evaluation) {
      const request = {
        key: evaluation.key,
        emissionIntervalUs: evaluation.policy.emissionIntervalUs,
        burst: evaluation.policy.burst,
        cost: evaluation.cost ?? 1,
        record: evaluation.record ?? true,
        onceKey: evaluation.onceKey,
      };
      if (request.cost < 0 || request.cost > request.burst) {
        throw new RangeError(`cost ${request.cost} is outside 0..${request.burst}`);
      }
      if (remote) {
        if (redisWorthTrying()) {
          try {
            const result = await remote.evaluate(request);
            recovered();
            return decided(evaluation, 'redis', result);
          } catch (err) {
            outage('command failed', err);
          }
        } else if (!degraded) {
          outage(`connection ${redis?.status ?? 'absent'}`);
        }
      }
      return decided(evaluation, 'memory', memory.evaluate(request));
    },
  };
}
