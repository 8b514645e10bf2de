import type { Container } from '../container.js';
import { withTransaction } from '../db/transaction.js';
import { isAppError } from '../errors.js';
import { SYSTEM_ACTOR, type Role } from '../http/context.js';

/** The string options of the admin CLI's onboarding commands, as parseArgs returns them. */
export interface OnboardingOptions {
  code?: string;
  name?: string;
  currency?: string;
  timezone?: string;
  'revenue-share-bps'?: string;
  'fee-bps'?: string;
}

/** The string options of create-operator and create-admin-key. */
export interface OperatorOptions {
  email?: string;
  name?: string;
  role?: string;
  'owner-id'?: string;
  operator?: string;
  description?: string;
}

/** A command line that cannot run as given: printed with the usage, exit status 2. */
export class UsageError extends Error {}

const ACTOR = SYSTEM_ACTOR('admin-cli');
const CARRIER_CODE = /^[a-z0-9][a-z0-9_-]{1,31}$/;

function required(options: OnboardingOptions, name: keyof OnboardingOptions): string {
  const value = options[name];
  if (value === undefined || value.trim() === '') throw new UsageError(`--${name} is required.`);
  return value;
}

/** Basis points as the HTTP contract takes them: an integer from 0 to 10000. */
function basisPoints(options: OnboardingOptions, name: keyof OnboardingOptions): number {
  const value = required(options, name);
  const bps = /^[0-9]{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(bps <= 10_000)) throw new UsageError(`--${name} must be an integer from 0 to 10000.`);
  return bps;
}

function boundedName(options: OnboardingOptions): string {
  const name = required(options, 'name');
  if (name.length > 200) throw new UsageError('--name must be at most 200 characters.');
  return name;
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Runs one operation and prints its result as JSON. A refusal by the services (an AppError:
 * duplicate code, unknown time zone, unsupported currency, …) prints its code and detail and
 * exits 1, as the HTTP API would answer 4xx.
 */
async function printed(work: () => Promise<unknown>): Promise<number> {
  try {
    printJson(await work());
    return 0;
  } catch (err) {
    if (!isAppError(err)) throw err;
    process.stderr.write(`${err.code}${err.param ? ` (${err.param})` : ''}: ${err.message}\n`);
    return 1;
  }
}

/** Like printed, for commands whose output is text: a refusal prints its code and exits 1. */
async function refusable(work: () => Promise<void>): Promise<number> {
  try {
    await work();
    return 0;
  } catch (err) {
    if (!isAppError(err)) throw err;
    process.stderr.write(`${err.code}${err.param ? ` (${err.param})` : ''}: ${err.message}\n`);
    return 1;
  }
}

const ROLES: readonly Role[] = ['merchant', 'carrier', 'admin', 'auditor'];

/**
 * Creates an operator (default role admin: the way to name the first person of an install) and
 * prints their one-time set-up link alone on the last line.
 */
export function createOperator(c: Container, options: OperatorOptions): Promise<number> {
  const email = options.email?.trim();
  if (!email) throw new UsageError('--email is required.');
  const role = (options.role ?? 'admin') as Role;
  if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}.`);
  const name = options.name?.trim() || email;
  return refusable(async () => {
    const op = await c.operators.createOperator(ACTOR, {
      email,
      name,
      role,
      ...(options['owner-id'] ? { owner_id: options['owner-id'] } : {}),
    });
    process.stdout.write(
      `Created ${op.role} operator ${op.id} (${op.email}).\n` +
        `One-time set-up link, valid until ${op.setup.expires_at}:\n${op.setup.url}\n`,
    );
  });
}

/**
 * Creates an admin key and prints it alone on the last line: for the operator named by
 * --operator (id or email), or else for a new bootstrap operator of its own.
 */
export function createAdminKey(c: Container, options: OperatorOptions): Promise<number> {
  return refusable(async () => {
    const operator = options.operator ? await c.operators.findOperator(options.operator) : null;
    const key = await withTransaction(c.pool, (tx) =>
      c.apiKeys.createKeyIn(tx, ACTOR, {
        role: 'admin',
        ...(operator ? { operator_id: operator.id } : {}),
        description: options.description ?? 'created with the admin CLI',
      }),
    );
    process.stdout.write(
      `Created admin key ${key.id} for operator ${key.operator_id}. It is shown once:\n${key.key}\n`,
    );
  });
}

/** Onboards a carrier with the default limits of its currency; prints it as the API shows it. */
export function onboardCarrier(c: Container, options: OnboardingOptions): Promise<number> {
  const code = required(options, 'code');
  if (!CARRIER_CODE.test(code)) {
    throw new UsageError(
      '--code must be 2–32 of a-z, 0-9, _ and -, starting with a letter or digit.',
    );
  }
  const input = {
    code,
    name: boundedName(options),
    currency: required(options, 'currency'),
    timezone: required(options, 'timezone'),
    revenue_share_bps: basisPoints(options, 'revenue-share-bps'),
  };
  return printed(() => c.carriers.createCarrier(ACTOR, input));
}

export function onboardMerchant(c: Container, options: OnboardingOptions): Promise<number> {
  const input = { name: boundedName(options), fee_bps: basisPoints(options, 'fee-bps') };
  return printed(() => c.merchants.createMerchant(ACTOR, input));
}

/** Prints the ledger verification; exit status 1 when the books do not check out. */
export async function verifyLedger(c: Container): Promise<number> {
  const verdict = await c.ledger.verify();
  printJson(verdict);
  return verdict.ok ? 0 : 1;
}
