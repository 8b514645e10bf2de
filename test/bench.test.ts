import { describe, expect, it } from 'vitest';
import { scenarioFigures } from '../bench/load.js';
import type { LoadOutcome } from '../bench/load-worker.js';
import { parsePgbenchOutput } from '../bench/pgbench.js';
import { benchMsisdn, plannedCharge, type Fixtures } from '../bench/plan.js';
import { areaOf, summariseProfile, type CpuProfile } from '../bench/profile.js';
import { bars, ratios } from '../bench/report.js';
import { statementLabel } from '../bench/sql-label.js';
import { isE164 } from '../src/lib/msisdn.js';

const fixtures: Fixtures = {
  baseUrl: 'http://127.0.0.1:1',
  runId: 'r1',
  currency: 'VND',
  amount: '1000',
  merchants: Array.from({ length: 100 }, (_, i) => ({ id: `mer_${i}`, key: `k${i}` })),
  msisdns: Array.from({ length: 10_000 }, (_, i) => benchMsisdn(i)),
};

function outcome(over: Partial<LoadOutcome>): LoadOutcome {
  return {
    scenario: 'spread',
    duration_s: 10,
    responses: 0,
    statuses: {},
    created: 0,
    replayed: 0,
    denied: 0,
    connection_errors: 0,
    timeouts: 0,
    latency_ms: { p50: 1, p90: 2, p99: 3, max: 4, avg: 1 },
    settle: { retried: 0, created: 0, replayed: 0, denied: 0, other: 0 },
    window_us: { from: 0, to: 1 },
    cpu_s: 1,
    ...over,
  };
}

describe('bench request plan', () => {
  it('rebuilds the exact key and body of a spread charge for its replay', () => {
    const a = plannedCharge(fixtures, 'spread', 12_345);
    const b = plannedCharge(fixtures, 'spread', 12_345);
    expect(b).toEqual(a);
    expect(a.key).toBe('bench-r1-spread-12345');
    expect(JSON.parse(a.body)).toEqual({
      msisdn: fixtures.msisdns[a.subscriber],
      amount: '1000',
      currency: 'VND',
      description: 'bench charge',
    });
  });

  it('spreads over every merchant and subscriber, and sends hot traffic to one merchant', () => {
    const merchants = new Set<number>();
    const subscribers = new Set<number>();
    for (let n = 0; n < 10_000; n++) {
      const c = plannedCharge(fixtures, 'spread', n);
      merchants.add(c.merchant);
      subscribers.add(c.subscriber);
      expect(plannedCharge(fixtures, 'hot', n).merchant).toBe(0);
    }
    expect(merchants.size).toBe(100);
    expect(subscribers.size).toBe(10_000);
  });

  it('never gives two scenarios the same idempotency key', () => {
    expect(plannedCharge(fixtures, 'hot', 7).key).not.toBe(
      plannedCharge(fixtures, 'spread', 7).key,
    );
    expect(plannedCharge(fixtures, 'warmup', 7).key).not.toBe(
      plannedCharge(fixtures, 'spread', 7).key,
    );
  });

  it('makes valid, distinct E.164 numbers', () => {
    expect(isE164(benchMsisdn(0))).toBe(true);
    expect(isE164(benchMsisdn(99_999))).toBe(true);
    expect(benchMsisdn(1)).not.toBe(benchMsisdn(10));
  });
});

describe('bench figures', () => {
  it('counts every answer but a fresh 201 as an error under spread and hot', () => {
    const f = scenarioFigures(
      'spread',
      outcome({
        responses: 110,
        statuses: { '201': 100, '402': 4, '429': 6 },
        created: 100,
        denied: 4,
        connection_errors: 2,
      }),
    );
    expect(f.errors).toBe(12);
    expect(f.charges_per_s).toBe(10);
  });

  it('counts a replay that executed (no Idempotent-Replayed header) as an error', () => {
    const f = scenarioFigures(
      'replay',
      outcome({ responses: 50, statuses: { '201': 50 }, replayed: 49, created: 1 }),
    );
    expect(f.errors).toBe(1);
    expect(f.charges_per_s).toBeCloseTo(4.9);
  });

  it('grades ratios against the first bar', () => {
    const spread = scenarioFigures('spread', outcome({ responses: 3000, created: 3000 }));
    const hot = scenarioFigures('hot', outcome({ responses: 2000, created: 2000 }));
    const replay = scenarioFigures('replay', outcome({ responses: 7000, replayed: 7000 }));
    const extras = {
      rss_max_mb: 100,
      loadavg_1m: 1,
      backlog_at_end: {} as never,
      cpu: {} as never,
    };
    const scenarios = {
      spread: { ...spread, ...extras },
      hot: { ...hot, ...extras },
      replay: { ...replay, ...extras },
    };
    const r = ratios(1000, scenarios);
    expect(r).toEqual({ spread_vs_pgbench: 0.3, hot_vs_spread: 0.667, replay_vs_spread: 2.333 });
    const graded = bars({ ratios: r, scenarios, gateway_rss_mb: 301 } as never);
    expect(graded.spread_vs_pgbench!.pass).toBe(true);
    expect(graded.hot_vs_spread!.pass).toBe(false);
    expect(graded.replay_vs_spread!.pass).toBe(true);
    expect(graded.p99_ms!.pass).toBe(true);
    expect(graded.gateway_rss_mb!.pass).toBe(false);
  });
});

describe('pgbench output', () => {
  it('reads tps, latency and transaction counts', () => {
    const out = [
      'transaction type: <builtin: TPC-B (sort of)>',
      'number of transactions actually processed: 10517',
      'number of failed transactions: 0 (0.000%)',
      'latency average = 30.097 ms',
      'initial connection time = 180.679 ms',
      'tps = 2126.489422 (without initial connection time)',
    ].join('\n');
    expect(parsePgbenchOutput(out)).toEqual({
      tps: 2126.489422,
      latencyAvgMs: 30.097,
      transactions: 10517,
      failed: 0,
    });
  });

  it('refuses output without a tps line', () => {
    expect(() => parsePgbenchOutput('FATAL: sorry, too many clients already')).toThrow(/no tps/);
  });
});

describe('statement labels', () => {
  it('names the tables a statement writes, and its locks', () => {
    expect(statementLabel('UPDATE ledger_accounts SET posted = posted + $2 WHERE id = $1')).toBe(
      'UPDATE ledger_accounts',
    );
    expect(
      statementLabel(
        `SELECT pg_try_advisory_xact_lock(1) AS locked FROM (SELECT 1) one
           LEFT JOIN idempotency_keys k ON k.owner_id = $1`,
      ),
    ).toBe('JOIN idempotency_keys +advisory lock');
    expect(statementLabel('LEFT JOIN LATERAL (SELECT * FROM subscribers) s ON true')).toBe(
      'FROM subscribers',
    );
    expect(statementLabel('begin')).toBe('BEGIN');
  });
});

describe('CPU profile summary', () => {
  // root → express handler → pg query → (native) writev; and root → (garbage collector)
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: 0 }, children: [2, 5] },
      {
        id: 2,
        callFrame: {
          functionName: 'handle',
          url: 'file:///w/node_modules/express/lib/router.js',
          lineNumber: 9,
        },
        children: [3],
      },
      {
        id: 3,
        callFrame: {
          functionName: 'query',
          url: 'file:///w/node_modules/pg/lib/client.js',
          lineNumber: 99,
        },
        children: [4],
      },
      { id: 4, callFrame: { functionName: 'writev', url: '', lineNumber: -1 } },
      { id: 5, callFrame: { functionName: '(garbage collector)', url: '', lineNumber: -1 } },
    ],
    startTime: 1_000,
    endTime: 2_000,
    samples: [4, 4, 3, 5, 4],
    timeDeltas: [100, 100, 100, 100, 500],
  };

  it('ranks self time and charges native writes to the package that made them', () => {
    const s = summariseProfile(profile);
    expect(s.samples).toBe(5);
    expect(s.top_self[0]).toMatchObject({ function: 'writev', self_pct: 60 });
    expect(s.self_by_owner).toEqual([
      { area: 'pg', pct: 80 },
      { area: 'GC', pct: 20 },
    ]);
    expect(s.inclusive_by_area.find((a) => a.area === 'express')?.pct).toBe(80);
  });

  it('keeps only the samples inside the window', () => {
    // Sample times: 1100, 1200, 1300, 1400, 1900.
    const s = summariseProfile(profile, { fromUs: 1150, toUs: 1450 });
    expect(s.samples).toBe(3);
    expect(s.self_by_owner).toEqual([
      { area: 'pg', pct: 66.7 },
      { area: 'GC', pct: 33.3 },
    ]);
  });

  it('names areas by package, node module or app file', () => {
    expect(
      areaOf({ functionName: 'f', url: 'file:///a/node_modules/@scope/x/i.js', lineNumber: 1 }),
    ).toBe('@scope/x');
    expect(
      areaOf({ functionName: 'f', url: 'node:internal/streams/writable', lineNumber: 1 }),
    ).toBe('node:streams');
    expect(
      areaOf({ functionName: 'f', url: 'file:///w/dist/modules/charges/x.js', lineNumber: 1 }),
    ).toBe('app modules/charges');
  });
});
