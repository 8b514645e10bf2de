/**
 * `npm run bench`: builds the gateway, measures this machine's durable-transaction baseline with
 * pgbench, seeds tenants and funded subscribers (seed.ts), drives one-step charges in three
 * scenarios (spread, hot, replay) from a separate load-generator process, then checks the ledger
 * and that every charge is accounted for. Loopback only; bounded by BENCH_DURATION per phase.
 * Exits non-zero when a correctness check fails or the run cannot complete.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  loadBenchConfig,
  RESULTS_DIR,
  ROOT,
  type BenchConfig,
  type LoadScenario,
  SCENARIOS,
} from './config.js';
import {
  freePort,
  runCommand,
  sampleRss,
  startGateway,
  waitReady,
  type Gateway,
} from './gateway.js';
import { api } from './http.js';
import { runScenario, scenarioFigures, type ScenarioFigures } from './load.js';
import type { LoadOutcome } from './load-worker.js';
import { findPgbench, PGBENCH_INSTALL_HINT, runPgbench } from './pgbench.js';
import { cpuFigures, cpuSnapshot, quiesce } from './measure.js';
import { createDatabase, dropDatabase, serverSettings } from './postgres.js';
import { formatProfileSummary, summariseProfile, type CpuProfile } from './profile.js';
import { bars, formatResults, ratios, type BenchResults, type ScenarioExtras } from './report.js';
import { createAdminKey, seed } from './seed.js';
import { backlog, verifyRun } from './verify.js';

const started = Date.now();
const log = (line: string) =>
  process.stdout.write(
    `[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}\n`,
  );

/** Undo steps, run in reverse on success, failure or Ctrl-C. */
const cleanups: { what: string; run: () => unknown }[] = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length) {
      const step = cleanups.pop()!;
      try {
        await step.run();
      } catch (err) {
        process.stderr.write(`cleanup (${step.what}) failed: ${String(err)}\n`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping the gateway and dropping the bench databases\n`);
    void cleanUp().then(() => process.exit(130));
  });
}

async function main(): Promise<number> {
  const cfg = loadBenchConfig();
  const pgbench = findPgbench();
  if (!pgbench) {
    process.stderr.write(`${PGBENCH_INSTALL_HINT}\n`);
    return 1;
  }
  mkdirSync(RESULTS_DIR, { recursive: true });
  const workDir = mkdtempSync(join(tmpdir(), 'dcb-bench-'));
  cleanups.push({
    what: 'work dir',
    run: () => rmSync(workDir, { recursive: true, force: true }),
  });
  log(
    `load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${availableParallelism()} CPUs`,
  );
  log(
    `run ${cfg.runId}: ${cfg.connections} connections, ${cfg.durationSeconds} s per phase, ` +
      `${cfg.merchants} merchants, ${cfg.subscribers} subscribers`,
  );

  if (cfg.skipBuild) log('BENCH_SKIP_BUILD set: using the existing dist/');
  else {
    log('npm run build');
    await runCommand('npm', ['run', '--silent', 'build']).catch((err: unknown) => {
      throw new Error(
        `The build failed (BENCH_SKIP_BUILD=1 measures the existing dist/ instead): ${String(err)}`,
      );
    });
  }
  if (!existsSync(join(ROOT, 'dist', 'main.js'))) throw new Error('dist/main.js is missing.');

  const postgres = await serverSettings(cfg.baseDatabaseUrl);

  // The baseline first, while nothing else of ours holds connections.
  const pgbName = `dcb_bench_pgb_${cfg.runId}`;
  const pgbUrl = await createDatabase(cfg.baseDatabaseUrl, pgbName);
  cleanups.push({ what: pgbName, run: () => dropDatabase(cfg.baseDatabaseUrl, pgbName) });
  log(
    `pgbench -i -s ${cfg.pgbenchScale}, then -c ${cfg.connections} -j 2 -T ${cfg.durationSeconds}`,
  );
  const pg = await runPgbench(pgbench, pgbUrl, {
    scale: cfg.pgbenchScale,
    clients: cfg.connections,
    durationSeconds: cfg.durationSeconds,
  });
  const pgLoad = Math.round(loadavg()[0]! * 10) / 10;
  log(`pgbench: ${pg.tps.toFixed(0)} tps (load average ${pgLoad})`);
  await dropDatabase(cfg.baseDatabaseUrl, pgbName);

  const gwName = `dcb_bench_${cfg.runId}`;
  const gwUrl = await createDatabase(cfg.baseDatabaseUrl, gwName);
  cleanups.push({ what: gwName, run: () => dropDatabase(cfg.baseDatabaseUrl, gwName) });

  const profileDir = cfg.profile ? join(RESULTS_DIR, `profile-${cfg.runId}`) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const port = await freePort();
  log(`starting the gateway on 127.0.0.1:${port}${profileDir ? ' under --cpu-prof' : ''}`);
  const gateway: Gateway = startGateway({
    databaseUrl: gwUrl,
    redisUrl: cfg.redisUrl,
    port,
    runId: cfg.runId,
    logFile: join(RESULTS_DIR, 'gateway.log'),
    poolMax: cfg.gatewayPoolMax,
    otpHashSecret: cfg.otpHashSecret,
    envOverrides: cfg.gatewayEnvOverrides,
    cpuProfDir: profileDir,
  });
  cleanups.push({ what: 'gateway', run: () => gateway.stop() });
  const rss = sampleRss(gateway.pid);
  cleanups.push({ what: 'rss sampler', run: () => rss.stop() });
  await waitReady(gateway);

  log('seeding');
  const adminKey = await createAdminKey(gwUrl, cfg.otpHashSecret);
  const { fixtures, timings } = await seed(cfg, gateway.baseUrl, gwUrl, adminKey, log);
  const fixturesFile = join(workDir, 'fixtures.json');
  writeFileSync(fixturesFile, JSON.stringify(fixtures));
  const seeded = await api(gateway.baseUrl, 'GET', '/v1/admin/ledger/verify', adminKey);
  if ((seeded.body as { ok?: boolean } | undefined)?.ok !== true) {
    throw new Error(`The ledger does not verify after the seed: ${JSON.stringify(seeded.body)}`);
  }
  // Without workers (an experiment) nothing would drain the backlog.
  const workersOn = !['false', '0', 'no'].includes(cfg.gatewayEnvOverrides.WORKERS_ENABLED ?? '');
  if (workersOn) await quiesce(gwUrl, 120_000, log);

  const outcomes: Partial<Record<LoadScenario, LoadOutcome>> = {};
  const figures: Partial<Record<LoadScenario, ScenarioFigures & ScenarioExtras>> = {};
  const phases: LoadScenario[] = [
    ...(cfg.warmupSeconds > 0 ? (['warmup'] as const) : []),
    'spread',
    'hot',
    'replay',
  ];
  for (const scenario of phases) {
    const seconds = scenario === 'warmup' ? cfg.warmupSeconds : cfg.durationSeconds;
    log(`${scenario}: ${cfg.connections} connections for ${seconds} s`);
    rss.resetMax();
    const cpu0 = await cpuSnapshot(gateway.pid, cfg.baseDatabaseUrl, gwName);
    const outcome = await runScenario(
      {
        fixturesFile,
        scenario,
        durationSeconds: seconds,
        connections: cfg.connections,
        outFile: join(workDir, `out-${scenario}.json`),
        ...(scenario === 'replay' ? { replayOf: outcomes.spread?.created_ns ?? [] } : {}),
      },
      workDir,
    );
    const cpu1 = await cpuSnapshot(gateway.pid, cfg.baseDatabaseUrl, gwName);
    outcomes[scenario] = outcome;
    const f = scenarioFigures(scenario, outcome);
    const cpu = cpuFigures(cpu0, cpu1, outcome, f.charges_per_s * f.duration_s);
    const rssMax = Math.round(rss.max);
    // What the workers had not caught up with when the load stopped; then let them finish, so
    // one scenario's backlog does not slow the next.
    const left = await backlog(gwUrl);
    figures[scenario] = {
      ...f,
      rss_max_mb: rssMax,
      backlog_at_end: left,
      loadavg_1m: Math.round(loadavg()[0]! * 10) / 10,
      cpu,
    };
    log(
      `${scenario}: ${f.charges_per_s.toFixed(0)}/s, p50 ${f.p50_ms} ms, p99 ${f.p99_ms} ms, ` +
        `errors ${f.errors}; backlog ${left.balance_deltas} deltas, ${left.unsealed_audit_events} unsealed audit events`,
    );
    if (workersOn) await quiesce(gwUrl, 60_000, log);
  }
  const scenarios: BenchResults['scenarios'] = {};
  for (const name of SCENARIOS) if (figures[name]) scenarios[name] = figures[name];

  log('verifying the ledger and the charge count');
  const verification = await verifyRun({
    baseUrl: gateway.baseUrl,
    adminKey,
    databaseUrl: gwUrl,
    scenarios: figures,
    backlogAtEnd: figures.replay?.backlog_at_end ?? (await backlog(gwUrl)),
  });

  rss.stop();
  const code = await gateway.stop();
  if (code !== 0) log(`the gateway exited with ${code} after SIGTERM`);

  const partial: Omit<BenchResults, 'bars' | 'finished_at'> = {
    run_id: cfg.runId,
    started_at: new Date(started).toISOString(),
    machine: { cpus: availableParallelism(), node: process.version, postgres },
    config: benchConfigView(cfg),
    pgbench_tps: Math.round(pg.tps * 10) / 10,
    pgbench: { ...pg, loadavg_1m: pgLoad },
    scenarios,
    ratios: ratios(pg.tps, scenarios),
    gateway_rss_mb: Math.round(rss.overallMax),
    ...(figures.warmup ? { warmup: figures.warmup } : {}),
    verify: verification,
    seed: timings as unknown as Record<string, number>,
  };
  if (profileDir && outcomes.spread) {
    partial.profile = profileOf(profileDir, outcomes.spread.window_us);
  }
  const results: BenchResults = {
    ...partial,
    bars: bars(partial),
    finished_at: new Date().toISOString(),
  };
  writeFileSync(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(formatResults(results));
  if (results.profile) process.stdout.write(`\n${formatProfileSummary(results.profile)}\n\n`);
  log(
    `results in bench/results/latest.json (${((Date.now() - started) / 1000).toFixed(0)} s in all)`,
  );

  const ok = verification.ledger_ok && verification.charges_match;
  if (!ok) process.stderr.write('CORRECTNESS CHECK FAILED (see verify in the results)\n');
  return ok ? 0 : 1;
}

function benchConfigView(cfg: BenchConfig): Record<string, unknown> {
  return {
    duration_s: cfg.durationSeconds,
    connections: cfg.connections,
    merchants: cfg.merchants,
    subscribers: cfg.subscribers,
    subscriber_balance: cfg.balance,
    charge_amount: cfg.chargeAmount,
    pgbench_scale: cfg.pgbenchScale,
    carrier_limits: cfg.carrierLimits,
    gateway_env: {
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      WORKERS_ENABLED: 'true',
      PG_POOL_MAX: cfg.gatewayPoolMax ?? 'default (20)',
      RATE_LIMIT_KEY_RATE: '1000000',
      RATE_LIMIT_KEY_BURST: '1000000',
      RATE_LIMIT_MSISDN_PER_MINUTE: '100000',
      ...cfg.gatewayEnvOverrides,
    },
    profiled: cfg.profile,
  };
}

/** The spread window of the gateway's CPU profile (written when the process exits). */
function profileOf(dir: string, window: LoadOutcome['window_us']): BenchResults['profile'] {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) {
    log(`no .cpuprofile in ${dir}`);
    return undefined;
  }
  const path = join(dir, file);
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const summary = summariseProfile(profile, { fromUs: window.from, toUs: window.to });
  writeFileSync(join(dir, 'summary.txt'), `${formatProfileSummary(summary)}\n`);
  return { ...summary, file: path.slice(ROOT.length + 1) };
}

main().then(
  async (code) => {
    await cleanUp();
    process.exit(code);
  },
  async (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    await cleanUp();
    process.exit(1);
  },
);
