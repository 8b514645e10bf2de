import { z } from 'zod';
import { parseNetworks } from './lib/outbound-address.js';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/**
 * Every environment variable the gateway reads, with its meaning. Parsed once at start;
 * an invalid value stops the process with a message naming the variable.
 */
export const configSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'])
    .default('development')
    .describe('Runtime mode; production turns off pretty output and sandbox defaults.'),
  HOST: z.string().min(1).default('0.0.0.0').describe('Interface the HTTP server binds to.'),
  PORT: int(0, 65535).default(8080).describe('HTTP port (0 picks a free one).'),
  METRICS_HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe(
      'Interface the Prometheus /metrics listener binds to; loopback by default, so only the host (or a sidecar) can scrape it. The public port does not serve /metrics.',
    ),
  METRICS_PORT: int(0, 65535)
    .default(9464)
    .describe('Port of the /metrics listener (0 picks a free one).'),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/ })
    .optional()
    .describe(
      'PostgreSQL connection string. Unset: an embedded PostgreSQL under .data/ is started.',
    ),
  REDIS_URL: z
    .url({ protocol: /^rediss?$/ })
    .optional()
    .describe('Redis connection string for rate limits. Unset: an in-process limiter is used.'),
  API_KEY_CACHE_MS: int(0, 60_000)
    .default(5000)
    .describe(
      'How long a resolved API key is trusted in process, in milliseconds (0: looked up on every request). Revoking a key or suspending an operator is pushed to every instance at once (PostgreSQL LISTEN/NOTIFY); only while that channel is down does a key revoked elsewhere keep working here, for at most this long.',
    ),
  PUBLIC_BASE_URL: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe(
      "The gateway's public address (scheme, host, port), for links it prints such as an operator's set-up link. Unset: http://localhost:PORT.",
    ),
  OPERATOR_SETUP_TTL_HOURS: int(1, 30 * 24)
    .default(72)
    .describe("How long a new operator's one-time set-up link stays valid, in hours."),
  RATE_LIMIT_KEY_RATE: z.coerce
    .number()
    .positive()
    .max(1_000_000)
    .default(50)
    .describe('Sustained requests per second per API key (an owner may have its own rate_limit).'),
  RATE_LIMIT_KEY_BURST: int(1, 1_000_000)
    .default(100)
    .describe('Requests per API key that may arrive at once (GCRA burst).'),
  RATE_LIMIT_MSISDN_PER_MINUTE: int(1, 100_000)
    .default(5)
    .describe('Charge attempts per subscriber (MSISDN) per minute, across all merchants.'),
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: int(1, 100_000)
    .default(20)
    .describe(
      'Failed authentications per client address per minute; further failures from it get 429 (a valid key from it is still accepted).',
    ),
  RATE_LIMIT_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,40}$/)
    .default('rl')
    .describe('Prefix of the rate-limit keys in Redis (keys look like `rl:{key:<id>}`).'),
  RATE_LIMIT_POLICY_CACHE_MS: int(0, 600_000)
    .default(5000)
    .describe('How long a per-owner rate-limit override is kept in process, in milliseconds.'),
  RATE_LIMIT_REDIS_RETRY_MS: int(50, 600_000)
    .default(1000)
    .describe(
      'After a failed Redis command, how long limits stay in process before Redis is tried again.',
    ),
  SANDBOX: bool
    .optional()
    .describe(
      'Sandbox mode: seeds demo tenants, exposes the SMS outbox, allows loopback webhooks. Default: on when DATABASE_URL is unset.',
    ),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino log level.'),
  PG_POOL_MAX: int(1, 500).default(20).describe('Maximum PostgreSQL connections per instance.'),
  PG_STATEMENT_TIMEOUT_MS: int(100, 600_000)
    .default(10_000)
    .describe('statement_timeout for every gateway connection, in milliseconds.'),
  EMBEDDED_PG_DIR: z
    .string()
    .min(1)
    .default('.data/postgres')
    .describe('Data directory of the embedded PostgreSQL.'),
  EMBEDDED_PG_PORT: int(0, 65535)
    .default(0)
    .describe('Port of the embedded PostgreSQL (0 picks a free one).'),
  IDEMPOTENCY_RETENTION_HOURS: int(72, 24 * 365)
    .default(72)
    .describe('How long idempotency keys and their stored answers are kept (at least 72 h).'),
  RESERVATION_TTL_SECONDS: int(60, 30 * 24 * 3600)
    .default(7 * 24 * 3600)
    .describe('Default lifetime of a reservation (capture=false) before the sweeper cancels it.'),
  WORKERS_ENABLED: bool.default(true).describe('Run background workers in this instance.'),
  WORKER_INTERVAL_MS: int(50, 600_000)
    .default(1000)
    .describe(
      'How often background workers look for work, in milliseconds. Under load most run again at once; the ledger roll-up and the audit sealer only after a full batch.',
    ),
  AUDIT_SEAL_BATCH_SIZE: int(1, 10_000)
    .default(500)
    .describe('How many audit events the sealer hashes into the chain per transaction.'),
  WEBHOOK_TIMEOUT_MS: int(100, 60_000)
    .default(10_000)
    .describe(
      'How long one webhook delivery may take before it counts as failed, in milliseconds.',
    ),
  WEBHOOK_RETRY_SCHEDULE_SECONDS: z
    .string()
    .regex(/^\d{1,6}(,\d{1,6}){0,29}$/, 'a comma-separated list of whole seconds')
    .default('10,30,60,300,900,3600,10800,21600,43200,86400')
    .transform((v) => v.split(',').map(Number))
    .describe(
      'Base delays between webhook attempts, in seconds (each is jittered down to a random fraction). After the last one, an event is retried once more when 24 h have passed since it came due, then marked failed.',
    ),
  OTP_HASH_SECRET: z
    .string()
    .min(32)
    .optional()
    .describe(
      'Server key of the one-time code hashes (HMAC-SHA256), at least 32 characters; the same on every instance. Required outside sandbox; in sandbox a random one is made per process.',
    ),
  OTP_MSISDN_MAX_FAILURES: int(1, 1000)
    .default(5)
    .describe(
      'Wrong one-time codes per subscriber number (across all charges and merchants) within OTP_MSISDN_WINDOW_SECONDS before the number is locked: its consent charges are then denied otp_locked.',
    ),
  OTP_MSISDN_WINDOW_SECONDS: int(1, 7 * 24 * 3600)
    .default(900)
    .describe(
      'The sliding window of OTP_MSISDN_MAX_FAILURES, in seconds; a locked number is unlocked when the oldest of its counted wrong codes leaves it.',
    ),
  SMS_TIMEOUT_MS: int(100, 60_000)
    .default(5000)
    .describe('How long one SMS hand-off to a carrier may take before it counts as failed, in ms.'),
  SMS_PRIVATE_NETWORKS: z
    .string()
    .default('')
    .refine(
      (v) => {
        try {
          parseNetworks(v);
          return true;
        } catch {
          return false;
        }
      },
      { message: 'a comma-separated list of CIDR ranges, e.g. 10.20.0.0/16,fd00:1::/64' },
    )
    .transform((v) => parseNetworks(v).map(([ip, bits]) => `${ip.toString()}/${bits}`))
    .describe(
      'Private ranges (CIDR, comma-separated) a carrier sms_url may reach outside sandbox, e.g. a carrier interconnect. Default none: only public unicast addresses, as for webhooks.',
    ),
  SHUTDOWN_TIMEOUT_MS: int(100, 600_000)
    .default(15_000)
    .describe('How long SIGTERM waits for in-flight requests before closing anyway.'),
  TRUST_PROXY: bool
    .default(false)
    .describe('Trust X-Forwarded-For for the client IP (behind a load balancer).'),
  SETTLEMENT_GRACE_SECONDS: int(0, 7 * 24 * 3600)
    .default(3600)
    .describe(
      "How long after a carrier's local day ends its settlement statement is closed automatically, in seconds.",
    ),
  RECONCILIATION_MAX_BYTES: int(1, 10 * 1024 ** 3)
    .default(200 * 1024 ** 2)
    .describe(
      'Largest carrier reconciliation file accepted (POST /v1/carrier/reconciliations), in bytes; larger uploads get 413.',
    ),
  BULK_STATEMENT_TIMEOUT_MS: int(1000, 3_600_000)
    .default(600_000)
    .describe(
      'statement_timeout for settlement closes and reconciliation runs, which read and write a whole day or file of rows, in milliseconds.',
    ),
  SESSION_IDLE_TIMEOUT_SECONDS: int(60, 24 * 3600)
    .default(30 * 60)
    .describe('A console session ends after this many seconds without a request (SPEC §9.2).'),
  SESSION_ABSOLUTE_TIMEOUT_SECONDS: int(60, 7 * 24 * 3600)
    .default(12 * 3600)
    .describe('A console session ends this many seconds after sign-in, however busy.'),
  SESSION_TOUCH_INTERVAL_SECONDS: int(1, 600)
    .default(60)
    .describe(
      "How stale a session's last_seen_at may get before a request writes it again (bounds the writes per session; the idle timeout is exact to within this).",
    ),
  SIGN_IN_FAILURES_PER_EMAIL: int(1, 100_000)
    .default(5)
    .describe(
      'Failed sign-ins (and failed second factors) per email (per operator) per SIGN_IN_BRAKE_WINDOW_SECONDS before 429.',
    ),
  SIGN_IN_FAILURES_PER_ADDRESS: int(1, 100_000)
    .default(20)
    .describe('Failed sign-ins per client address per SIGN_IN_BRAKE_WINDOW_SECONDS before 429.'),
  SIGN_IN_BRAKE_WINDOW_SECONDS: int(1, 24 * 3600)
    .default(15 * 60)
    .describe('The window of the sign-in brakes: their whole budget comes back over this time.'),
  PASSWORD_SCRYPT_LOG2_N: int(14, 20)
    .default(17)
    .describe(
      'scrypt cost of new password hashes as log2(N), with r=8, p=1 (OWASP: 17, 128 MiB). Stored hashes keep their own parameters and are rehashed at the next sign-in. Below 17 only in sandbox.',
    ),
  TOTP_ISSUER: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^:]+$/, 'no colon (it separates issuer and account in otpauth labels)')
    .default('DCB gateway')
    .describe("The issuer name authenticator apps show next to an operator's TOTP entry."),
});

export type RawConfig = z.infer<typeof configSchema>;
export type Config = Omit<RawConfig, 'SANDBOX'> & { SANDBOX: boolean };

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * What only a serving gateway needs, checked before it starts (the admin CLI and tests build the
 * container without it): outside sandbox, the key of the one-time code hashes, since a key made
 * up per process would leave codes unconfirmable on another instance or after a restart; and
 * password hashes at least as costly as OWASP asks.
 */
export function assertServerConfig(config: Config): void {
  if (!config.SANDBOX && config.OTP_HASH_SECRET === undefined) {
    throw new ConfigError([
      'OTP_HASH_SECRET: required outside sandbox mode (at least 32 characters)',
    ]);
  }
  if (!config.SANDBOX && config.PASSWORD_SCRYPT_LOG2_N < 17) {
    throw new ConfigError(['PASSWORD_SCRYPT_LOG2_N: at least 17 outside sandbox mode (OWASP)']);
  }
}

/** Parses the environment; throws ConfigError naming each wrong variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join('.') || '(environment)';
        return `${name}: ${issue.message}`;
      }),
    );
  }
  const raw = parsed.data;
  return { ...raw, SANDBOX: raw.SANDBOX ?? raw.DATABASE_URL === undefined };
}

/** A human-readable table of the variables, for `--help` style output and the README. */
export function describeConfig(): { name: string; description: string }[] {
  return Object.entries(configSchema.shape).map(([name, schema]) => ({
    name,
    description: schema.description ?? '',
  }));
}
