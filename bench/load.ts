import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, type LoadScenario } from './config.js';
import type { LoadJob, LoadOutcome } from './load-worker.js';

/** Runs one scenario in a separate load-generator process and returns what it measured. */
export function runScenario(job: LoadJob, workDir: string): Promise<LoadOutcome> {
  const jobFile = join(workDir, `job-${job.scenario}.json`);
  writeFileSync(jobFile, JSON.stringify(job));
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench', 'load-worker.ts'), jobFile],
      { cwd: ROOT, stdio: ['ignore', 'inherit', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`load generator (${job.scenario}) exited ${code}:\n${err.slice(-2000)}`));
        return;
      }
      resolve(JSON.parse(readFileSync(job.outFile, 'utf8')) as LoadOutcome);
    });
  });
}

export interface ScenarioFigures {
  charges_per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Answers other than the scenario expects, plus connection errors and timeouts. */
  errors: number;
  responses: number;
  statuses: Record<string, number>;
  created: number;
  replayed: number;
  denied: number;
  settle: LoadOutcome['settle'];
  duration_s: number;
}

/**
 * What counts as success: spread and hot expect a fresh 201; replay expects a 201 marked
 * Idempotent-Replayed (a fresh 201 there would be a second charge for a finished key).
 */
export function scenarioFigures(scenario: LoadScenario, o: LoadOutcome): ScenarioFigures {
  const good = scenario === 'replay' ? o.replayed : o.created;
  // autocannon counts timeouts among its connection errors.
  const errors = o.responses - good + o.connection_errors + o.settle.other;
  return {
    charges_per_s: good / o.duration_s,
    p50_ms: o.latency_ms.p50,
    p99_ms: o.latency_ms.p99,
    max_ms: o.latency_ms.max,
    errors,
    responses: o.responses,
    statuses: o.statuses,
    created: o.created,
    replayed: o.replayed,
    denied: o.denied,
    settle: o.settle,
    duration_s: o.duration_s,
  };
}
