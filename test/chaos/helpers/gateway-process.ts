import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { call, sleep } from './http-client.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MAIN = path.join(ROOT, 'dist', 'main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(full));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Runs a command in the project; rejects with its output when it exits non-zero. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out.slice(-4000)}`)),
    );
  });
}

/** `npm run build` unless dist/main.js is newer than every source file (CI builds just before). */
export async function ensureBuilt(): Promise<void> {
  if (mtimeOf(MAIN) > newestMtime(path.join(ROOT, 'src'))) return;
  await run('npm', ['run', 'build', '--silent']);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** The bootstrap path of a production install: the admin CLI prints the key on its last line. */
export async function createAdminKeyWithCli(databaseUrl: string): Promise<string> {
  const out = await run(process.execPath, ['dist/cli/admin.js', 'create-admin-key'], {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'warn',
  });
  const key = out.trim().split('\n').pop()!.trim();
  if (!/^dcb_ak_/.test(key)) throw new Error(`unexpected admin CLI output:\n${out}`);
  return key;
}

/**
 * Production mode on the given database and Redis, workers on, loopback only, with rate limits
 * raised so that they never decide an outcome under the test's load.
 */
export function gatewayEnv(o: {
  databaseUrl: string;
  redisUrl: string;
  port: number;
  /** The metrics listener's port; 0 (a free one) unless the test reads /metrics. */
  metricsPort?: number;
  extra?: Record<string, string>;
}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    NODE_ENV: 'production',
    SANDBOX: 'false',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(o.port),
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: String(o.metricsPort ?? 0),
    DATABASE_URL: o.databaseUrl,
    REDIS_URL: o.redisUrl,
    WORKERS_ENABLED: 'true',
    WORKER_INTERVAL_MS: '200',
    PG_POOL_MAX: '20',
    OTP_HASH_SECRET: 'chaos-suite-otp-hash-secret-0123456789abcdef',
    RATE_LIMIT_KEY_PREFIX: `rl-chaos-${o.port}-${Date.now()}`,
    RATE_LIMIT_KEY_RATE: '1000000',
    RATE_LIMIT_KEY_BURST: '1000000',
    RATE_LIMIT_MSISDN_PER_MINUTE: '100000',
    RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: '100000',
    ...o.extra,
  };
}

export interface GatewayProcess {
  pid: number;
  baseUrl: string;
  /** The metrics listener, when METRICS_PORT names a port (with 0 it is not known here). */
  metricsUrl: string | undefined;
  /** The last lines the process wrote (pino JSON at warn and above, or a crash). */
  output: string[];
  /** Settles once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(sig: NodeJS.Signals): void;
}

/** Starts `node dist/main.js` and waits until /healthz answers. */
export async function startGateway(env: Record<string, string>): Promise<GatewayProcess> {
  const child: ChildProcess = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const keep = (d: Buffer) => {
    output.push(...d.toString().split('\n').filter(Boolean));
    if (output.length > 400) output.splice(0, output.length - 400);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  const baseUrl = `http://127.0.0.1:${env.PORT}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (gone) throw new Error(`gateway exited while starting:\n${output.join('\n')}`);
    const ok = await call(baseUrl, 'GET', '/healthz', { timeoutMs: 1000 }).then(
      (a) => a.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway did not answer /healthz within 30 s:\n${output.join('\n')}`);
    }
    await sleep(50);
  }
  return {
    pid: child.pid!,
    baseUrl,
    metricsUrl:
      env.METRICS_PORT && env.METRICS_PORT !== '0'
        ? `http://127.0.0.1:${env.METRICS_PORT}`
        : undefined,
    output,
    exited,
    signal: (sig) => {
      if (!gone) child.kill(sig);
    },
  };
}
