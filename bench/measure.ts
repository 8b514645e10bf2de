/** What a scenario cost in CPU, and waiting for the background workers between scenarios. */
import type { LoadOutcome } from './load-worker.js';
import { cpuSeconds } from './gateway.js';
import { backendPids } from './postgres.js';
import type { ScenarioExtras } from './report.js';
import { backlog } from './verify.js';

export interface CpuSnapshot {
  at: number;
  gateway: number;
  postgres: Map<number, number>;
}

/** CPU used so far by the gateway and by the server backends of its database. */
export async function cpuSnapshot(
  pid: number,
  baseUrl: string,
  database: string,
): Promise<CpuSnapshot> {
  const postgres = new Map<number, number>();
  for (const backend of await backendPids(baseUrl, database)) {
    const s = cpuSeconds(backend);
    if (s !== undefined) postgres.set(backend, s);
  }
  return { at: Date.now(), gateway: cpuSeconds(pid) ?? 0, postgres };
}

/** CPU between two snapshots, in % of one core and per good answer. */
export function cpuFigures(
  a: CpuSnapshot,
  b: CpuSnapshot,
  outcome: LoadOutcome,
  answers: number,
): ScenarioExtras['cpu'] {
  const wall = (b.at - a.at) / 1000;
  const gateway = b.gateway - a.gateway;
  let postgres = 0;
  for (const [backend, s] of b.postgres) postgres += s - (a.postgres.get(backend) ?? 0);
  const pct = (s: number) => Math.round((100 * s) / wall);
  const perCharge = (s: number) => Math.round((1000 * s * 100) / Math.max(answers, 1)) / 100;
  return {
    gateway_pct: pct(gateway),
    postgres_pct: pct(postgres),
    loadgen_pct: Math.round((100 * outcome.cpu_s) / outcome.duration_s),
    gateway_ms_per_charge: perCharge(gateway),
    postgres_ms_per_charge: perCharge(postgres),
  };
}

/** Waits (up to `timeoutMs`) until the roll-up and the audit sealer have caught up. */
export async function quiesce(
  databaseUrl: string,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<void> {
  const t0 = Date.now();
  let left = await backlog(databaseUrl);
  while (left.balance_deltas + left.unsealed_audit_events > 0 && Date.now() - t0 < timeoutMs) {
    await new Promise((r) => setTimeout(r, 250));
    left = await backlog(databaseUrl);
  }
  const waited = ((Date.now() - t0) / 1000).toFixed(1);
  if (left.balance_deltas + left.unsealed_audit_events > 0) {
    log(`workers still behind after ${waited} s: ${JSON.stringify(left)}; going on`);
  } else if (Date.now() - t0 > 1000) log(`workers caught up in ${waited} s`);
}
