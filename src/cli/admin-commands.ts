import type { Container } from '../container.js';
import { isAppError } from '../errors.js';
import { SYSTEM_ACTOR } from '../http/context.js';

/** The string options of the admin CLI's onboarding commands, as parseArgs returns them. */
export interface OnboardingOptions {
  code?: string;
  name?: string;
  currency?: string;
  timezone?: string;
  'revenue-share-bps'?: string;
  'fee-bps'?: string;
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
