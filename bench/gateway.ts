import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ROOT } from './config.js';

/** Runs a command in the repository, inheriting the terminal; rejects on a non-zero exit. */
export function runCommand(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      env: env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.slice(-3000)}`));
    });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface GatewayOptions {
  databaseUrl: string;
  redisUrl: string;
  port: number;
  runId: string;
  logFile: string;
  poolMax?: number;
  otpHashSecret: string;
  /** Applied last: experiments with the gateway's configuration. */
  envOverrides?: Record<string, string>;
  /** Directory for `--cpu-prof` output; no profiling when absent. */
  cpuProfDir?: string;
}

export interface Gateway {
  pid: number;
  baseUrl: string;
  /** Resolves with the exit code once the process has gone. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | null>;
}

/**
 * The environment the gateway runs with under load: production mode, real Postgres and Redis,
 * workers on, loopback only, and limits raised so they never decide the throughput.
 */
export function gatewayEnv(o: GatewayOptions): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    SANDBOX: 'false',
    LOG_LEVEL: 'warn',
    WORKERS_ENABLED: 'true',
    HOST: '127.0.0.1',
    PORT: String(o.port),
    // A free port for the metrics listener, so a run never collides with another gateway's.
    METRICS_PORT: '0',
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    RATE_LIMIT_KEY_PREFIX: `bench-${o.runId}`,
    // The per-key limiter still runs its Redis script on every request; only the quota is raised.
    RATE_LIMIT_KEY_RATE: '1000000',
    RATE_LIMIT_KEY_BURST: '1000000',
    // 64 connections over 10,000 subscribers charge each one more than the default 5 times a minute.
    RATE_LIMIT_MSISDN_PER_MINUTE: '100000',
    OTP_HASH_SECRET: o.otpHashSecret,
    ...(o.poolMax ? { PG_POOL_MAX: String(o.poolMax) } : {}),
    ...o.envOverrides,
  };
}

export function startGateway(o: GatewayOptions): Gateway {
  const args = [
    ...(o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : []),
    join(ROOT, 'dist', 'main.js'),
  ];
  const log = createWriteStream(o.logFile, { flags: 'w' });
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: ROOT,
    env: gatewayEnv(o),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (child.pid === undefined) throw new Error('The gateway process did not start.');
  const pid = child.pid;
  let gone = false;
  void exited.then(() => (gone = true));
  return {
    pid,
    baseUrl: `http://127.0.0.1:${o.port}`,
    exited,
    async stop(graceMs = 20_000) {
      if (gone) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Waits until `/readyz` answers 200 (Postgres and Redis reachable, migrations done). */
export async function waitReady(gateway: Gateway, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitedEarly = false;
  void gateway.exited.then(() => (exitedEarly = true));
  while (Date.now() < deadline) {
    if (exitedEarly) throw new Error('The gateway exited during start; see its log.');
    try {
      const res = await fetch(`${gateway.baseUrl}/readyz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`The gateway was not ready within ${timeoutMs} ms.`);
}

/** Resident set size of a process in MB, from /proc; undefined once it is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS on an interval; `max` is the largest seen since the last `resetMax`. */
export function sampleRss(pid: number, intervalMs = 250) {
  let max = 0;
  let overallMax = 0;
  let last = 0;
  const take = () => {
    const mb = rssMb(pid);
    if (mb !== undefined) {
      last = mb;
      if (mb > max) max = mb;
      if (mb > overallMax) overallMax = mb;
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  timer.unref();
  return {
    get max() {
      return max;
    },
    get last() {
      return last;
    },
    /** The largest seen since sampling began. */
    get overallMax() {
      return overallMax;
    },
    resetMax() {
      take();
      max = last;
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/** CPU seconds (user + system) a process has used, from /proc; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // CLK_TCK is 100 on Linux
  } catch {
    return undefined;
  }
}
