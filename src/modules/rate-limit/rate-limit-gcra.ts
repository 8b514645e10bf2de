import type { Redis } from 'ioredis';
import type { GcraRefund, GcraRequest, GcraResult } from './rate-limit-types.js';

/**
 * GCRA for one bucket, evaluated atomically in Redis. The bucket holds its theoretical arrival
 * time (TAT) in microseconds and expires when it is full again, so idle keys cost nothing.
 * Time comes from Redis TIME, so every gateway instance shares one clock; Redis ≥ 5 replicates
 * the script's effects, so reading TIME before a write is allowed without replicate_commands().
 * Kept as a TypeScript constant so `tsc` carries it into dist/ with the rest of the code.
 *
 *   KEYS[1]  the bucket, hash-tagged (`rl:{scope:id}`) so the script runs unchanged on a cluster
 *   ARGV[1]  emission interval in microseconds: how long one unit takes to come back
 *   ARGV[2]  burst: units that may be used at once
 *   ARGV[3]  cost: units this request takes (0 ≤ cost ≤ burst)
 *   ARGV[4]  "1" records the request when allowed; "0" only looks
 *   ARGV[5]  the current time in microseconds, or "" for Redis TIME (tests pin the clock with it)
 *   KEYS[2]  optional, same hash tag: marks what was counted (GcraRequest.onceKey); while it
 *            exists the request is allowed without taking units, and it is set, for as long as
 *            the bucket takes to fill, whenever a recorded request takes them
 *   returns  {allowed 1|0, remaining units, retry-after µs, µs until the bucket is full}
 */
export const GCRA_LUA = `
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local record = ARGV[4] == '1'
local now = tonumber(ARGV[5])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then
  tat = now
end
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {1, math.floor((tolerance - (tat - now)) / interval), 0, tat - now}
end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if allow_at > now then
  local remaining = math.max(0, math.floor((tolerance - (tat - now)) / interval))
  return {0, remaining, allow_at - now, tat - now}
end
if record and cost > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  if KEYS[2] then
    redis.call('SET', KEYS[2], '1', 'PX', math.ceil(tolerance / 1000))
  end
else
  new_tat = tat
end
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, new_tat - now}
`;

/**
 * Gives back `cost` units a recorded request took: the TAT moves back by cost × interval (never
 * before now; a bucket that is full again is deleted). Same keys and clock as GCRA_LUA.
 *
 *   KEYS[1]  the bucket
 *   ARGV[1]  emission interval in microseconds
 *   ARGV[2]  cost: units to give back
 *   ARGV[3]  the current time in microseconds, or "" for Redis TIME
 */
export const GCRA_REFUND_LUA = `
local interval = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then
  return 0
end
local new_tat = tat - interval * cost
if new_tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
end
return 1
`;

const COMMAND = 'dcbRateLimitGcra';
const REFUND_COMMAND = 'dcbRateLimitGcraRefund';

/** The script with its keys counted in the first argument: one, or two with the onceKey marker. */
type GcraCommand = (
  keyCount: number,
  ...keysThenArgs: (string | number)[]
) => Promise<[number, number, number, number]>;

export interface RedisGcra {
  evaluate(request: GcraRequest): Promise<GcraResult>;
  refund(refund: GcraRefund): Promise<void>;
}

/** Registers the script on the client (EVALSHA, falling back to EVAL once per server). */
export function createRedisGcra(redis: Redis): RedisGcra {
  redis.defineCommand(COMMAND, { lua: GCRA_LUA });
  const command = (redis as unknown as Record<typeof COMMAND, GcraCommand>)[COMMAND].bind(redis);
  redis.defineCommand(REFUND_COMMAND, { lua: GCRA_REFUND_LUA, numberOfKeys: 1 });
  const refundCommand = (
    redis as unknown as Record<
      typeof REFUND_COMMAND,
      (key: string, interval: number, cost: number, now: string) => Promise<number>
    >
  )[REFUND_COMMAND].bind(redis);
  return {
    async refund({ key, emissionIntervalUs, cost, nowUs }) {
      await refundCommand(key, emissionIntervalUs, cost, nowUs === undefined ? '' : String(nowUs));
    },
    async evaluate(request) {
      const keys = request.onceKey === undefined ? [request.key] : [request.key, request.onceKey];
      const [allowed, remaining, retryAfterUs, resetUs] = await command(
        keys.length,
        ...keys,
        request.emissionIntervalUs,
        request.burst,
        request.cost,
        request.record ? '1' : '0',
        request.nowUs === undefined ? '' : String(request.nowUs),
      );
      return { allowed: allowed === 1, remaining, retryAfterUs, resetUs };
    },
  };
}
