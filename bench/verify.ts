import type { LoadScenario } from './config.js';
import { api } from './http.js';
import type { ScenarioFigures } from './load.js';
import { queryOnce } from './postgres.js';

export interface Verification {
  ledger_ok: boolean;
  charges_match: boolean;
  /** Charge rows in the database. */
  charges_in_db: number;
  /**
   * Executed answers over warm-up, spread and hot: fresh 201 and 402 under load, plus every request still
   * in flight when the clock ran out, settled by retrying it (one charge each, fresh or replayed).
   */
  charges_answered: number;
  /** Fresh (non-replayed) 201 answers in the replay scenario: must be 0. */
  replay_created: number;
  ledger: { accounts: number; transactions: number; entries: number };
  /** Work the background workers had not caught up with when the load stopped. */
  backlog_at_end: { balance_deltas: number; unsealed_audit_events: number };
}

export async function backlog(databaseUrl: string): Promise<Verification['backlog_at_end']> {
  const [row] = await queryOnce<{ deltas: string; unsealed: string }>(
    databaseUrl,
    `SELECT (SELECT count(*) FROM ledger_balance_deltas)::text AS deltas,
            (SELECT count(*) FROM audit_unsealed)::text AS unsealed`,
  );
  return { balance_deltas: Number(row!.deltas), unsealed_audit_events: Number(row!.unsealed) };
}

/**
 * The correctness checks after the load: the ledger verifies (it counts not-yet-rolled-up
 * deltas), and every charge row is accounted for by exactly one executed answer.
 */
export async function verifyRun(opts: {
  baseUrl: string;
  adminKey: string;
  databaseUrl: string;
  scenarios: Partial<Record<LoadScenario, ScenarioFigures>>;
  backlogAtEnd: Verification['backlog_at_end'];
}): Promise<Verification> {
  const res = await api(opts.baseUrl, 'GET', '/v1/admin/ledger/verify', opts.adminKey);
  const ledger =
    res.status === 200
      ? (res.body as { ok: boolean; accounts: number; transactions: number; entries: number })
      : undefined;
  const [row] = await queryOnce<{ n: string }>(
    opts.databaseUrl,
    'SELECT count(*)::text AS n FROM charges',
  );
  const inDb = Number(row!.n);
  let answered = 0;
  for (const name of ['warmup', 'spread', 'hot'] as const) {
    const s = opts.scenarios[name];
    // A settled request answered as a replay was executed under load with its answer lost.
    if (s)
      answered += s.created + s.denied + s.settle.created + s.settle.replayed + s.settle.denied;
  }
  const replay = opts.scenarios.replay;
  const replayCreated = replay ? replay.created + replay.settle.created : 0;
  return {
    ledger_ok: ledger?.ok === true,
    charges_match: inDb === answered && replayCreated === 0,
    charges_in_db: inDb,
    charges_answered: answered,
    replay_created: replayCreated,
    ledger: {
      accounts: ledger?.accounts ?? 0,
      transactions: ledger?.transactions ?? 0,
      entries: ledger?.entries ?? 0,
    },
    backlog_at_end: opts.backlogAtEnd,
  };
}
