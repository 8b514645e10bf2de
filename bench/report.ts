import type { ScenarioName } from './config.js';
import type { ScenarioFigures } from './load.js';
import type { PgbenchResult } from './pgbench.js';
import type { ProfileSummary } from './profile.js';
import type { Verification } from './verify.js';

export interface Bar {
  target: string;
  value: number;
  pass: boolean;
}

export interface ScenarioExtras {
  /** Largest gateway VmRSS seen during the scenario. */
  rss_max_mb: number;
  /** Work the background workers had not caught up with when the scenario's load stopped. */
  backlog_at_end: Verification['backlog_at_end'];
  /** The machine's 1-minute load average when the scenario ended (others share this machine). */
  loadavg_1m: number;
  /**
   * CPU used during the scenario, in % of one core (the machine has two), and per good answer:
   * the gateway process, the Postgres backends of the bench database, the load generator.
   */
  cpu: {
    gateway_pct: number;
    postgres_pct: number;
    loadgen_pct: number;
    gateway_ms_per_charge: number;
    postgres_ms_per_charge: number;
  };
}

export interface BenchResults {
  run_id: string;
  started_at: string;
  finished_at: string;
  machine: { cpus: number; node: string; postgres: Record<string, string> };
  config: Record<string, unknown>;
  pgbench_tps: number;
  pgbench: PgbenchResult & { loadavg_1m: number };
  scenarios: Partial<Record<ScenarioName, ScenarioFigures & ScenarioExtras>>;
  /** The unmeasured warm-up before the scenarios (its charges count in the checks). */
  warmup?: ScenarioFigures & ScenarioExtras;
  ratios: { spread_vs_pgbench: number; hot_vs_spread: number; replay_vs_spread: number };
  /** Largest VmRSS of the gateway process seen from start to stop (sampled every 250 ms). */
  gateway_rss_mb: number;
  verify: Verification;
  bars: Record<string, Bar>;
  seed: Record<string, number>;
  profile?: ProfileSummary & { file: string };
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

export function ratios(pgbenchTps: number, s: BenchResults['scenarios']): BenchResults['ratios'] {
  const spread = s.spread?.charges_per_s ?? 0;
  const div = (a: number | undefined, b: number) =>
    a === undefined || b === 0 ? 0 : round(a / b, 3);
  return {
    spread_vs_pgbench: div(s.spread?.charges_per_s, pgbenchTps),
    hot_vs_spread: div(s.hot?.charges_per_s, spread),
    replay_vs_spread: div(s.replay?.charges_per_s, spread),
  };
}

/** The first bar the gateway is measured against (SPEC §4.7 and the tracker's issue 9). */
export function bars(r: Omit<BenchResults, 'bars' | 'finished_at'>): Record<string, Bar> {
  const scenarios = Object.values(r.scenarios);
  const worstP99 = Math.max(0, ...scenarios.map((s) => s.p99_ms));
  const errors = scenarios.reduce((n, s) => n + s.errors, 0);
  return {
    spread_vs_pgbench: {
      target: '>= 0.25',
      value: r.ratios.spread_vs_pgbench,
      pass: r.ratios.spread_vs_pgbench >= 0.25,
    },
    p99_ms: { target: '<= 100 (worst scenario)', value: worstP99, pass: worstP99 <= 100 },
    unexpected_errors: { target: '0', value: errors, pass: errors === 0 },
    hot_vs_spread: {
      target: '>= 0.8',
      value: r.ratios.hot_vs_spread,
      pass: r.ratios.hot_vs_spread >= 0.8,
    },
    replay_vs_spread: {
      target: '>= 2',
      value: r.ratios.replay_vs_spread,
      pass: r.ratios.replay_vs_spread >= 2,
    },
    gateway_rss_mb: {
      target: '<= 300',
      value: round(r.gateway_rss_mb, 1),
      pass: r.gateway_rss_mb <= 300,
    },
  };
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function formatResults(r: BenchResults): string {
  const rows = (
    Object.entries(r.scenarios) as [ScenarioName, ScenarioFigures & ScenarioExtras][]
  ).map(([name, s]) => [
    name,
    s.charges_per_s.toFixed(0),
    String(s.p50_ms),
    String(s.p99_ms),
    String(s.max_ms),
    String(s.errors),
    s.rss_max_mb.toFixed(0),
    `${s.cpu.gateway_pct}/${s.cpu.postgres_pct}/${s.cpu.loadgen_pct}`,
    `${s.cpu.gateway_ms_per_charge}/${s.cpu.postgres_ms_per_charge}`,
    s.loadavg_1m.toFixed(1),
    Object.entries(s.statuses)
      .map(([code, n]) => `${code}:${n}`)
      .join(' '),
  ]);
  const barRows = Object.entries(r.bars).map(([name, b]) => [
    name,
    String(b.value),
    b.target,
    b.pass ? 'pass' : 'MISS',
  ]);
  return [
    '',
    `pgbench (TPC-B-like, scale ${r.pgbench.scale}, ${r.pgbench.clients} clients, ${r.pgbench.durationSeconds} s): ${r.pgbench_tps.toFixed(0)} tps (load average ${r.pgbench.loadavg_1m.toFixed(1)}; Postgres CPU ${r.pgbench.postgres_pct ?? '?'}% of a core, ${r.pgbench.postgres_ms_per_txn ?? '?'} ms per transaction)`,
    '',
    table(
      [
        'scenario',
        'charges/s',
        'p50 ms',
        'p99 ms',
        'max ms',
        'errors',
        'RSS MB',
        'CPU% gw/pg/gen',
        'CPU ms/charge gw/pg',
        'load',
        'statuses',
      ],
      rows,
    ),
    '',
    `ratios: spread/pgbench ${r.ratios.spread_vs_pgbench}, hot/spread ${r.ratios.hot_vs_spread}, replay/spread ${r.ratios.replay_vs_spread}`,
    `gateway RSS max: ${r.gateway_rss_mb.toFixed(0)} MB`,
    `verify: ledger ${r.verify.ledger_ok ? 'ok' : 'NOT OK'}, charges in db ${r.verify.charges_in_db} vs answered ${r.verify.charges_answered} (${r.verify.charges_match ? 'match' : 'MISMATCH'}), replays that executed ${r.verify.replay_created}`,
    `backlog when the load stopped: ${r.verify.backlog_at_end.balance_deltas} balance deltas, ${r.verify.backlog_at_end.unsealed_audit_events} unsealed audit events`,
    '',
    table(['bar', 'value', 'target', ''], barRows),
    '',
  ].join('\n');
}
