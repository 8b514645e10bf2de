import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { cpuSeconds } from './gateway.js';
import { queryOnce } from './postgres.js';

export const PGBENCH_INSTALL_HINT =
  'pgbench was not found. Install it with `apt-get install postgresql-contrib` ' +
  '(Debian/Ubuntu; it ships with the PostgreSQL server and client packages, under ' +
  '/usr/lib/postgresql/<version>/bin/), or `dnf install postgresql-contrib`, then run again.';

/** pgbench on PATH, else in Debian's versioned directory; undefined when absent. */
export function findPgbench(): string | undefined {
  try {
    const onPath = execFileSync('sh', ['-c', 'command -v pgbench'], { encoding: 'utf8' }).trim();
    if (onPath) return onPath;
  } catch {
    // not on PATH: look where Debian puts it
  }
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const candidate = `${base}/${v}/bin/pgbench`;
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** libpq environment for a postgres:// URL, so no password appears on a command line. */
function libpqEnv(url: string): NodeJS.ProcessEnv {
  const u = new URL(url);
  return {
    ...process.env,
    PGHOST: u.hostname,
    PGPORT: u.port || '5432',
    PGUSER: decodeURIComponent(u.username || 'postgres'),
    PGDATABASE: decodeURIComponent(u.pathname.slice(1)),
    ...(u.password ? { PGPASSWORD: decodeURIComponent(u.password) } : {}),
  };
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${bin} ${args.join(' ')} exited ${code}:\n${out.slice(-2000)}`));
    });
  });
}

export interface PgbenchResult {
  tps: number;
  /** CPU the pgbench database's server backends used, per transaction and in % of one core. */
  postgres_ms_per_txn: number | undefined;
  postgres_pct: number | undefined;
  latencyAvgMs: number | undefined;
  transactions: number | undefined;
  failed: number | undefined;
  clients: number;
  threads: number;
  scale: number;
  durationSeconds: number;
}

/** Records the CPU seconds of each backend of the database `url` names (the largest seen). */
async function backendCpu(url: string, seen: Map<number, number>): Promise<void> {
  const rows = await queryOnce<{ pid: number }>(
    url,
    'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
  );
  for (const { pid } of rows) {
    const s = cpuSeconds(pid);
    if (s !== undefined && s > (seen.get(pid) ?? 0)) seen.set(pid, s);
  }
}

/** Parses the summary pgbench prints at the end of a run. */
export function parsePgbenchOutput(out: string): {
  tps: number;
  latencyAvgMs?: number;
  transactions?: number;
  failed?: number;
} {
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1];
  if (tps === undefined) throw new Error(`pgbench printed no tps:\n${out.slice(-2000)}`);
  const latency = /latency average = ([\d.]+) ms/.exec(out)?.[1];
  const processed = /number of transactions actually processed: (\d+)/.exec(out)?.[1];
  const failed = /number of failed transactions: (\d+)/.exec(out)?.[1];
  return {
    tps: Number(tps),
    latencyAvgMs: latency === undefined ? undefined : Number(latency),
    transactions: processed === undefined ? undefined : Number(processed),
    failed: failed === undefined ? undefined : Number(failed),
  };
}

/**
 * The durable-transaction baseline of this machine: TPC-B-like pgbench on its own fresh
 * database (`pgbench -i -s scale`, then `-c clients -j 2 -T duration`).
 */
export async function runPgbench(
  bin: string,
  url: string,
  opts: { scale: number; clients: number; durationSeconds: number },
): Promise<PgbenchResult> {
  const env = libpqEnv(url);
  await run(bin, ['-i', '-q', '-s', String(opts.scale)], env);
  const threads = Math.min(2, opts.clients);
  const cpu = new Map<number, number>();
  const startedAt = Date.now();
  const poll = setInterval(() => {
    void backendCpu(url, cpu).catch(() => undefined);
  }, 500);
  let out: string;
  try {
    out = await run(
      bin,
      ['-c', String(opts.clients), '-j', String(threads), '-T', String(opts.durationSeconds)],
      env,
    );
  } finally {
    clearInterval(poll);
  }
  const wall = (Date.now() - startedAt) / 1000;
  const parsed = parsePgbenchOutput(out);
  const cpuSeconds = [...cpu.values()].reduce((a, b) => a + b, 0);
  return {
    tps: parsed.tps,
    postgres_ms_per_txn: parsed.transactions
      ? Math.round((100_000 * cpuSeconds) / parsed.transactions) / 100
      : undefined,
    postgres_pct: Math.round((100 * cpuSeconds) / wall),
    latencyAvgMs: parsed.latencyAvgMs,
    transactions: parsed.transactions,
    failed: parsed.failed,
    clients: opts.clients,
    threads,
    scale: opts.scale,
    durationSeconds: opts.durationSeconds,
  };
}
