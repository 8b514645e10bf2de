/**
 * The load generator: a process of its own (so it does not share a CPU queue with the runner),
 * driving one scenario with autocannon and writing what it saw to a JSON file.
 *
 *   node --import tsx bench/load-worker.ts <job.json>
 */
import { readFileSync, writeFileSync } from 'node:fs';
import autocannon, { type RequestParams } from 'autocannon';
import type { LoadScenario } from './config.js';
import { plannedCharge, type Fixtures, type PlannedCharge } from './plan.js';

export interface LoadJob {
  fixturesFile: string;
  scenario: LoadScenario;
  durationSeconds: number;
  connections: number;
  outFile: string;
  /** For `replay`: the spread charges (by n) that were answered 201 and may be retried. */
  replayOf?: number[];
}

export interface LoadOutcome {
  scenario: LoadScenario;
  duration_s: number;
  responses: number;
  /** Status code → count, as the load generator saw them. */
  statuses: Record<string, number>;
  /** 201 answers that executed (no Idempotent-Replayed header). */
  created: number;
  /** 201 answers marked Idempotent-Replayed. */
  replayed: number;
  /** 402 answers: recorded denials, each of which is a charge row too. */
  denied: number;
  connection_errors: number;
  timeouts: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number; avg: number };
  /** For spread: the n of every charge answered 201 and executed, for the replay scenario. */
  created_ns?: number[];
  /** Requests sent but unanswered when the clock ran out, retried (same key, same body) until answered. */
  settle: { retried: number; created: number; replayed: number; denied: number; other: number };
  /** When the load ran, in CLOCK_MONOTONIC microseconds (the clock of a V8 CPU profile). */
  window_us: { from: number; to: number };
  /** CPU seconds the load generator itself used while the load ran. */
  cpu_s: number;
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

function header(headers: Record<string, string | string[]>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

async function main(jobFile: string): Promise<void> {
  const job = JSON.parse(readFileSync(jobFile, 'utf8')) as LoadJob;
  const fixtures = JSON.parse(readFileSync(job.fixturesFile, 'utf8')) as Fixtures;
  const replayOf = job.replayOf ?? [];
  if (job.scenario === 'replay' && replayOf.length === 0) {
    throw new Error('The replay scenario needs completed spread charges to retry.');
  }

  const plan = (n: number): PlannedCharge =>
    job.scenario === 'replay'
      ? plannedCharge(fixtures, 'spread', replayOf[n % replayOf.length]!)
      : plannedCharge(fixtures, job.scenario, n);

  let next = 0;
  const inFlight = new Set<number>();
  const createdNs: number[] = [];
  let created = 0;
  let replayed = 0;
  let denied = 0;

  const from = nowUs();
  const cpu0 = process.cpuUsage();
  const result = await autocannon({
    url: fixtures.baseUrl,
    connections: job.connections,
    duration: job.durationSeconds,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: '/v1/charges',
        setupRequest(req: RequestParams, context) {
          const n = next++;
          const charge = plan(n);
          context.n = n;
          inFlight.add(n);
          return {
            ...req,
            method: 'POST',
            path: '/v1/charges',
            headers: {
              authorization: `Bearer ${fixtures.merchants[charge.merchant]!.key}`,
              'content-type': 'application/json',
              'idempotency-key': charge.key,
            },
            body: charge.body,
          };
        },
        onResponse(status, _body, context, headers) {
          const n = context.n as number;
          inFlight.delete(n);
          if (status === 201) {
            if (header(headers, 'idempotent-replayed') === 'true') replayed++;
            else {
              created++;
              if (job.scenario === 'spread') createdNs.push(n);
            }
          } else if (status === 402) denied++;
        },
      },
    ],
  });

  const to = nowUs();
  const cpu = process.cpuUsage(cpu0);
  const settle = await settleInFlight(fixtures, [...inFlight], plan);

  const statuses: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) {
    statuses[code] = Number(count);
  }
  const outcome: LoadOutcome = {
    scenario: job.scenario,
    duration_s: result.duration,
    responses: Object.values(statuses).reduce((a, b) => a + b, 0),
    statuses,
    created,
    replayed,
    denied,
    connection_errors: result.errors,
    timeouts: result.timeouts,
    latency_ms: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      avg: result.latency.average,
    },
    ...(job.scenario === 'spread' ? { created_ns: createdNs } : {}),
    settle,
    window_us: { from, to },
    cpu_s: (cpu.user + cpu.system) / 1e6,
  };
  writeFileSync(job.outFile, JSON.stringify(outcome));
}

/**
 * Retries each unanswered request as a client would after a lost connection: same key, same
 * body, until it gets an answer other than 409 in-progress. Every charge the server made is
 * then accounted for by exactly one 201 (fresh here, or replayed of one made under load).
 */
async function settleInFlight(
  fixtures: Fixtures,
  ns: number[],
  plan: (n: number) => PlannedCharge,
): Promise<LoadOutcome['settle']> {
  const s = { retried: ns.length, created: 0, replayed: 0, denied: 0, other: 0 };
  await Promise.all(
    ns.map(async (n) => {
      const charge = plan(n);
      for (let attempt = 0; attempt < 30; attempt++) {
        const res = await fetch(`${fixtures.baseUrl}/v1/charges`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${fixtures.merchants[charge.merchant]!.key}`,
            'content-type': 'application/json',
            'idempotency-key': charge.key,
          },
          body: charge.body,
        });
        await res.arrayBuffer();
        if (res.status === 409 || res.status === 503) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        if (res.status === 201) {
          if (res.headers.get('idempotent-replayed') === 'true') s.replayed++;
          else s.created++;
        } else if (res.status === 402) s.denied++;
        else s.other++;
        return;
      }
      s.other++;
    }),
  );
  return s;
}

const jobFile = process.argv[2];
if (!jobFile) {
  process.stderr.write('usage: load-worker.ts <job.json>\n');
  process.exit(2);
}
main(jobFile).then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
