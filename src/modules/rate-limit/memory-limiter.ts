import type { GcraRefund, GcraRequest, GcraResult } from './rate-limit-types.js';

export interface MemoryLimiter {
  evaluate(request: GcraRequest): GcraResult;
  /** Gives back units a recorded request took (see GCRA_REFUND_LUA). */
  refund(refund: GcraRefund): void;
  readonly size: number;
}

/** Microseconds on a clock that never goes backwards. */
export function monotonicMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/**
 * The same GCRA as the Redis script, for one process: used when no Redis is configured and
 * while Redis is unreachable. Full buckets are forgotten; past `maxEntries` the least recently
 * used buckets go first, so a flood of distinct keys cannot grow the heap without bound (the
 * onceKey markers likewise).
 */
export function createMemoryLimiter(
  options: { now?: () => number; maxEntries?: number } = {},
): MemoryLimiter {
  const now = options.now ?? monotonicMicros;
  const maxEntries = options.maxEntries ?? 100_000;
  const tats = new Map<string, number>();
  // onceKey markers: until when a counted request is allowed again for free.
  const counted = new Map<string, number>();

  /** Drops the least recently written entries of `map` beyond 90 % of maxEntries. */
  function dropOldest(map: Map<string, number>): void {
    const excess = map.size - Math.floor(maxEntries * 0.9);
    if (excess <= 0) return;
    let dropped = 0;
    for (const key of map.keys()) {
      if (dropped++ >= excess) break;
      map.delete(key);
    }
  }

  function prune(at: number): void {
    for (const [key, tat] of tats) if (tat <= at) tats.delete(key);
    for (const [key, until] of counted) if (until <= at) counted.delete(key);
    dropOldest(tats);
    dropOldest(counted);
  }

  return {
    get size() {
      return tats.size;
    },
    refund({ key, emissionIntervalUs, cost, nowUs }) {
      const stored = tats.get(key);
      if (stored === undefined) return;
      const tat = stored - emissionIntervalUs * cost;
      if (tat <= (nowUs ?? now())) tats.delete(key);
      else tats.set(key, tat);
    },
    evaluate({ key, emissionIntervalUs, burst, cost, record, nowUs, onceKey }) {
      const at = nowUs ?? now();
      const tolerance = emissionIntervalUs * burst;
      const stored = tats.get(key);
      const tat = stored === undefined || stored < at ? at : stored;
      const countedUntil = onceKey === undefined ? undefined : counted.get(onceKey);
      if (countedUntil !== undefined && countedUntil > at) {
        return {
          allowed: true,
          remaining: Math.floor((tolerance - (tat - at)) / emissionIntervalUs),
          retryAfterUs: 0,
          resetUs: tat - at,
        };
      }
      const newTat = tat + emissionIntervalUs * cost;
      const allowAt = newTat - tolerance;
      if (allowAt > at) {
        const remaining = Math.max(0, Math.floor((tolerance - (tat - at)) / emissionIntervalUs));
        return { allowed: false, remaining, retryAfterUs: allowAt - at, resetUs: tat - at };
      }
      let after = tat;
      if (record && cost > 0) {
        after = newTat;
        // Delete first so the Map's insertion order tracks recency for pruning.
        tats.delete(key);
        tats.set(key, newTat);
        if (onceKey !== undefined) {
          counted.delete(onceKey);
          counted.set(onceKey, at + tolerance);
        }
        if (tats.size > maxEntries || counted.size > maxEntries) prune(at);
      }
      return {
        allowed: true,
        remaining: Math.floor((tolerance - (after - at)) / emissionIntervalUs),
        retryAfterUs: 0,
        resetUs: after - at,
      };
    },
  };
}
