import type { GcraRequest, GcraResult } from './rate-limit-types.js';

export interface MemoryLimiter {
  evaluate(request: GcraRequest): GcraResult;
  readonly size: number;
}

/** Microseconds on a clock that never goes backwards. */
export function monotonicMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/**
 * The same GCRA as the Redis script, for one process: used when no Redis is configured and
 * while Redis is unreachable. Full buckets are forgotten; past `maxEntries` the least recently
 * used buckets go first, so a flood of distinct keys cannot grow the heap without bound.
 */
export function createMemoryLimiter(
  options: { now?: () => number; maxEntries?: number } = {},
): MemoryLimiter {
  const now = options.now ?? monotonicMicros;
  const maxEntries = options.maxEntries ?? 100_000;
  const tats = new Map<string, number>();

  function prune(at: number): void {
    for (const [key, tat] of tats) if (tat <= at) tats.delete(key);
    const excess = tats.size - Math.floor(maxEntries * 0.9);
    if (excess <= 0) return;
    let dropped = 0;
    for (const key of tats.keys()) {
      if (dropped++ >= excess) break;
      tats.delete(key);
    }
  }

  return {
    get size() {
      return tats.size;
    },
    evaluate({ key, emissionIntervalUs, burst, cost, record, nowUs }) {
      const at = nowUs ?? now();
      const tolerance = emissionIntervalUs * burst;
      const stored = tats.get(key);
      const tat = stored === undefined || stored < at ? at : stored;
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
        if (tats.size > maxEntries) prune(at);
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
