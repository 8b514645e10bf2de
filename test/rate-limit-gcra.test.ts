import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createMemoryLimiter } from '../src/modules/rate-limit/memory-limiter.js';
import { createRedisGcra, type RedisGcra } from '../src/modules/rate-limit/rate-limit-gcra.js';
import type { GcraRequest, GcraResult } from '../src/modules/rate-limit/rate-limit-types.js';
import { randomSuffix } from './helpers/harness.js';

// A pinned clock (ARGV[5] of the script) makes the boundaries exact to the microsecond; one test
// below uses Redis TIME with real waiting to show the unpinned path.
const T0 = 1_700_000_000_000_000;
const INTERVAL = 100_000; // 10 per second
const BURST = 5;

let redis: Redis;
let gcra: RedisGcra;
beforeAll(async () => {
  redis = new Redis(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 0 });
  await redis.connect();
  gcra = createRedisGcra(redis);
});
afterAll(() => redis.quit());

type Evaluate = (request: GcraRequest) => Promise<GcraResult>;

const backends: [string, () => Evaluate][] = [
  ['Redis script', () => (request) => gcra.evaluate(request)],
  [
    'in-process limiter',
    () => {
      const memory = createMemoryLimiter();
      return (request) => Promise.resolve(memory.evaluate(request));
    },
  ],
];

function bucket(): (at: number, cost?: number, record?: boolean) => GcraRequest {
  const key = `rl-unit-${randomSuffix()}:{key:${randomSuffix()}}`;
  return (at, cost = 1, record = true) => ({
    key,
    emissionIntervalUs: INTERVAL,
    burst: BURST,
    cost,
    record,
    nowUs: T0 + at,
  });
}

describe.each(backends)('GCRA (%s)', (_name, make) => {
  it('allows exactly the burst at one instant and refuses the next with a precise retry-after', async () => {
    const evaluate = make();
    const at = bucket();
    const remaining: number[] = [];
    for (let i = 0; i < BURST; i++) {
      const result = await evaluate(at(0));
      expect(result.allowed).toBe(true);
      remaining.push(result.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    expect(await evaluate(at(0))).toEqual({
      allowed: false,
      remaining: 0,
      retryAfterUs: INTERVAL,
      resetUs: BURST * INTERVAL,
    });
  });

  it('refuses one microsecond before a unit comes back and allows exactly when it does', async () => {
    const evaluate = make();
    const at = bucket();
    for (let i = 0; i < BURST; i++) await evaluate(at(0));
    const early = await evaluate(at(INTERVAL - 1));
    expect(early).toMatchObject({ allowed: false, retryAfterUs: 1 });
    const onTime = await evaluate(at(INTERVAL));
    expect(onTime).toMatchObject({ allowed: true, remaining: 0, resetUs: BURST * INTERVAL });
    expect(await evaluate(at(INTERVAL))).toMatchObject({ allowed: false, retryAfterUs: INTERVAL });
  });

  it('restores the full burst after a long gap, and no more than the burst', async () => {
    const evaluate = make();
    const at = bucket();
    for (let i = 0; i < BURST; i++) await evaluate(at(0));
    const later = 3_600_000_000;
    const results = [];
    for (let i = 0; i <= BURST; i++) results.push(await evaluate(at(later)));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, true, false]);
    expect(results[0]!.remaining).toBe(BURST - 1);
  });

  it('charges a cost above 1 as that many units, and refuses it until all of them are back', async () => {
    const evaluate = make();
    const at = bucket();
    expect(await evaluate(at(0, 3))).toMatchObject({ allowed: true, remaining: 2 });
    // Two units left: a cost of 3 waits for one more unit, and a refusal takes nothing.
    expect(await evaluate(at(0, 3))).toMatchObject({
      allowed: false,
      remaining: 2,
      retryAfterUs: INTERVAL,
    });
    expect(await evaluate(at(INTERVAL - 1, 3))).toMatchObject({ allowed: false, retryAfterUs: 1 });
    expect(await evaluate(at(INTERVAL, 3))).toMatchObject({ allowed: true, remaining: 0 });
    expect(await evaluate(at(INTERVAL, 1))).toMatchObject({ allowed: false });
  });

  it('looking (record = false) answers for the cost without taking anything', async () => {
    const evaluate = make();
    const at = bucket();
    for (let i = 0; i < BURST - 1; i++) await evaluate(at(0));
    expect(await evaluate(at(0, 1, false))).toMatchObject({ allowed: true, remaining: 1 });
    expect(await evaluate(at(0, 1, false))).toMatchObject({ allowed: true, remaining: 1 });
    expect(await evaluate(at(0))).toMatchObject({ allowed: true, remaining: 0 });
    expect(await evaluate(at(0, 1, false))).toMatchObject({
      allowed: false,
      retryAfterUs: INTERVAL,
    });
  });
});

describe.each(backends)('GCRA with onceKey (%s)', (_name, make) => {
  it('counts an attempt once: presented again it is allowed without taking a unit; a refused one is not remembered', async () => {
    const evaluate = make();
    const at = bucket();
    const attempt = (id: string, time = 0) => ({
      ...at(time),
      onceKey: `rl-unit-once-${randomSuffix()}-${id}`,
    });
    const first = attempt('first');
    expect(await evaluate(first)).toMatchObject({ allowed: true, remaining: BURST - 1 });
    for (let i = 0; i < 3; i++) {
      expect(await evaluate(first)).toMatchObject({ allowed: true, remaining: BURST - 1 });
    }
    for (let i = 1; i < BURST; i++) await evaluate(attempt(`other-${i}`));
    const refused = attempt('refused');
    expect(await evaluate(refused)).toMatchObject({ allowed: false, remaining: 0 });
    // Still counted: the first attempt again costs nothing, the refused one is refused again.
    expect(await evaluate(first)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await evaluate(refused)).toMatchObject({ allowed: false });
    expect(await evaluate({ ...refused, nowUs: T0 + INTERVAL })).toMatchObject({
      allowed: true,
      remaining: 0,
    });
  });
});

describe('GCRA script in Redis', () => {
  it('gives the same answers as the in-process limiter for any sequence of requests', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            advance: fc.integer({ min: 0, max: 3 * INTERVAL }),
            cost: fc.integer({ min: 0, max: BURST }),
            record: fc.boolean(),
          }),
          { minLength: 1, maxLength: 25 },
        ),
        async (steps) => {
          const memory = createMemoryLimiter();
          const at = bucket();
          let clock = 0;
          for (const step of steps) {
            clock += step.advance;
            const request = at(clock, step.cost, step.record);
            expect(await gcra.evaluate(request)).toEqual(memory.evaluate(request));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps the bucket only until it is full again', async () => {
    const key = `rl-unit-${randomSuffix()}:{key:${randomSuffix()}}`;
    const policy = { key, emissionIntervalUs: 2_000_000, burst: 3, record: true };
    await gcra.evaluate({ ...policy, cost: 2 });
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(3_000);
    expect(ttl).toBeLessThanOrEqual(4_000);
    // A look stores nothing.
    const other = `rl-unit-${randomSuffix()}:{key:${randomSuffix()}}`;
    await gcra.evaluate({ ...policy, key: other, cost: 1, record: false });
    expect(await redis.exists(other)).toBe(0);
  });

  it('takes time from Redis TIME: refused at the burst, allowed again after retry-after', async () => {
    const key = `rl-unit-${randomSuffix()}:{key:${randomSuffix()}}`;
    const request = { key, emissionIntervalUs: 200_000, burst: 2, cost: 1, record: true };
    expect((await gcra.evaluate(request)).allowed).toBe(true);
    expect((await gcra.evaluate(request)).allowed).toBe(true);
    const refused = await gcra.evaluate(request);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterUs).toBeGreaterThan(0);
    expect(refused.retryAfterUs).toBeLessThanOrEqual(200_000);
    await new Promise((resolve) => setTimeout(resolve, Math.ceil(refused.retryAfterUs / 1000) + 5));
    expect(await gcra.evaluate(request)).toMatchObject({ allowed: true, remaining: 0 });
  });
});
