/**
 * Money: the one module that parses, validates, converts, formats and splits amounts
 * (SPEC §2.3, §3 "Money", §4.5, §4.6). Nothing else in the code does arithmetic on amounts.
 *
 * - At the API an amount is a decimal string ("15000", "12.50"); in code and in the database
 *   it is an integer number of minor units, always a `bigint` (never a JS number).
 * - Parsing goes through decimal.js (with enough precision that nothing is ever rounded);
 *   integer rounding (`roundHalfEven`) is exact bigint arithmetic, so it is correct for any
 *   magnitude (decimal.js would need a precision large enough for the operands).
 *
 * Decisions:
 * - Canonical spelling only (SPEC §10): ASCII digits with an optional fraction, no sign,
 *   exponent, whitespace, separators or leading zeros ("015000", "+100", "1e3", " 1", "1_000",
 *   "0x10" and full-width digits are refused); a single "0" before the point is the only
 *   leading zero ("0.50"). The same pattern is the `Amount` schema of openapi.yaml.
 * - The currency's exponent defines the format: any fraction digit beyond it is rejected,
 *   even a zero. So "1.0" VND and "1.500" USD are rejected; within the exponent trailing
 *   zeros are fine and mean nothing: "12.5" and "12.50" USD are both 1250n.
 * - Maximum amount: 10^15 minor units (MAX_AMOUNT_MINOR), far below the signed BIGINT
 *   limit (9223372036854775807), so every accepted amount — and sums of many of them —
 *   fits the database column.
 * - Strings longer than 40 characters are rejected before any other work.
 */
import { Decimal } from 'decimal.js';
import { AppError } from '../../errors.js';

/** ISO 4217 minor-unit exponents (number of decimals) of the supported currencies. */
export const CURRENCY_EXPONENTS: Readonly<Record<string, number>> = Object.freeze({
  // Southeast / East Asia
  VND: 0,
  IDR: 2,
  PHP: 2,
  THB: 2,
  SGD: 2,
  MYR: 2,
  KHR: 2,
  LAK: 2,
  MMK: 2,
  BND: 2,
  JPY: 0,
  KRW: 0,
  CNY: 2,
  HKD: 2,
  TWD: 2,
  INR: 2,
  // Elsewhere
  USD: 2,
  EUR: 2,
  GBP: 2,
  AUD: 2,
  CHF: 2,
  // Three-decimal currencies (kept so that exponent 3 is exercised)
  KWD: 3,
  BHD: 3,
});

/** Largest amount accepted anywhere, in minor units (a business cap, well inside BIGINT). */
export const MAX_AMOUNT_MINOR = 10n ** 15n;

/** Amount strings longer than this are rejected without being parsed. */
export const MAX_AMOUNT_STRING_LENGTH = 40;

/** The canonical spelling of an amount; also the `pattern` of `Amount` in openapi.yaml. */
export const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

/**
 * A decimal.js constructor private to this module: 60 significant digits (inputs are at most
 * 40 characters, exponents at most 3, so no operation here ever rounds), half-even rounding,
 * and no exponential notation in toString().
 */
const Dec = Decimal.clone({
  precision: 60,
  rounding: Decimal.ROUND_HALF_EVEN,
  toExpNeg: -9e15,
  toExpPos: 9e15,
});

export function isSupportedCurrency(code: string): boolean {
  return typeof code === 'string' && Object.hasOwn(CURRENCY_EXPONENTS, code);
}

/** Exponent of a supported currency; throws `unsupported_currency` (param `currency`). */
export function currencyExponent(code: string): number {
  const exponent = isSupportedCurrency(code) ? CURRENCY_EXPONENTS[code] : undefined;
  if (exponent === undefined) {
    const shown = typeof code === 'string' ? `"${code.slice(0, 16)}"` : 'a non-string value';
    throw new AppError(
      'unsupported_currency',
      `Currency ${shown} is not supported; use an upper-case ISO 4217 code such as VND or USD.`,
      { param: 'currency' },
    );
  }
  return exponent;
}

function invalidAmount(param: string, detail: string): AppError {
  return new AppError('invalid_amount', `${param} ${detail}`, { param });
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function parseMinor(value: unknown, currency: string, param: string, allowZero: boolean): bigint {
  const exponent = currencyExponent(currency);
  if (typeof value !== 'string') {
    throw invalidAmount(
      param,
      `must be a decimal string such as "15000" or "12.50", not ${describeType(value)}.`,
    );
  }
  if (value.length > MAX_AMOUNT_STRING_LENGTH) {
    throw invalidAmount(param, `is too long (at most ${MAX_AMOUNT_STRING_LENGTH} characters).`);
  }
  const match = AMOUNT_PATTERN.exec(value);
  if (match === null && /^0[0-9]/.test(value)) {
    throw invalidAmount(param, 'must not have leading zeros (write "15000", not "015000").');
  }
  if (match === null) {
    throw invalidAmount(
      param,
      'must be a plain decimal string of digits with an optional fraction (e.g. "15000" or ' +
        '"12.50"): no sign, spaces, exponent or leading/trailing decimal point.',
    );
  }
  const fraction = match[2] ?? '';
  if (fraction.length > exponent) {
    throw invalidAmount(
      param,
      exponent === 0
        ? `must be a whole number for ${currency}, which has no decimals.`
        : `has ${fraction.length} decimals but ${currency} allows at most ${exponent}.`,
    );
  }
  // Exact: at most 40 digits scaled by 10^exponent, within the 60-digit precision.
  const minorDecimal = new Dec(value).times(new Dec(10).pow(exponent));
  if (minorDecimal.gt(MAX_AMOUNT_MINOR.toString())) {
    throw invalidAmount(
      param,
      `exceeds the maximum of ${formatAmount(MAX_AMOUNT_MINOR, currency)} ${currency} ` +
        `(10^15 minor units).`,
    );
  }
  const minor = BigInt(minorDecimal.toFixed(0));
  if (minor === 0n && !allowZero) {
    throw invalidAmount(param, 'must be greater than zero.');
  }
  return minor;
}

/**
 * Parses an API amount string into minor units.
 * Throws `unsupported_currency` (param `currency`) or `invalid_amount` (param `param`).
 */
export function parseAmount(value: unknown, currency: string, param = 'amount'): bigint {
  return parseMinor(value, currency, param, false);
}

/** Same as parseAmount but allows "0" (for filters like amount ranges / credit limits). */
export function parseNonNegativeAmount(value: unknown, currency: string, param = 'amount'): bigint {
  return parseMinor(value, currency, param, true);
}

/**
 * Minor units → API decimal string with exactly the currency's exponent of decimals:
 * 15000n VND → "15000", 1250n USD → "12.50", -1250n USD → "-12.50".
 */
export function formatAmount(minor: bigint, currency: string): string {
  const exponent = currencyExponent(currency);
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString();
  if (exponent === 0) return (negative ? '-' : '') + digits;
  const padded = digits.padStart(exponent + 1, '0');
  const whole = padded.slice(0, padded.length - exponent);
  const fraction = padded.slice(padded.length - exponent);
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}

function internal(detail: string): AppError {
  return new AppError('internal_error', detail);
}

/**
 * numerator / denominator rounded to the nearest integer, ties to the even neighbour
 * (banker's rounding). Exact for any bigint; works for negative operands (-2.5 → -2).
 */
export function roundHalfEven(numerator: bigint, denominator: bigint): bigint {
  if (denominator === 0n) throw internal('roundHalfEven: division by zero');
  let n = numerator;
  let d = denominator;
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const quotient = n / d; // truncated toward zero
  const remainder = n - quotient * d; // same sign as n, |remainder| < d
  const twiceRemainder = (remainder < 0n ? -remainder : remainder) * 2n;
  const step = n < 0n ? -1n : 1n;
  if (twiceRemainder > d) return quotient + step;
  if (twiceRemainder === d && quotient % 2n !== 0n) return quotient + step;
  return quotient;
}

export interface RevenueSplit {
  carrierShare: bigint;
  gatewayFee: bigint;
  merchantNet: bigint;
}

function assertBps(name: string, bps: number): void {
  if (!Number.isInteger(bps) || bps < 0 || bps > 10_000) {
    throw internal(`${name} must be an integer number of basis points in [0, 10000], got ${bps}`);
  }
}

/**
 * SPEC §4.6: carrier_share = round_half_even(A×bps/10000), gateway_fee likewise,
 * merchant_net = A − both.
 *
 * One edge case the formula alone gets wrong: when revenueShareBps + feeBps = 10000 and both
 * products are exact halves with odd integer parts (e.g. A = 3 at 5000/5000 → 1.5 and 1.5,
 * both rounding up to 2), the two rounded parts exceed A and merchant_net would be −1. In
 * that case (and only then) the gateway fee absorbs the extra minor unit:
 * gateway_fee = A − carrier_share, merchant_net = 0. So all three parts are always ≥ 0 and
 * sum exactly to A.
 */
export function splitRevenue(
  amount: bigint,
  revenueShareBps: number,
  feeBps: number,
): RevenueSplit {
  if (amount < 0n) throw internal(`splitRevenue: amount must be >= 0, got ${amount}`);
  assertBps('revenueShareBps', revenueShareBps);
  assertBps('feeBps', feeBps);
  if (revenueShareBps + feeBps > 10_000) {
    throw internal(
      `splitRevenue: revenueShareBps + feeBps must be <= 10000, got ${revenueShareBps + feeBps}`,
    );
  }
  const carrierShare = roundHalfEven(amount * BigInt(revenueShareBps), 10_000n);
  let gatewayFee = roundHalfEven(amount * BigInt(feeBps), 10_000n);
  if (carrierShare + gatewayFee > amount) gatewayFee = amount - carrierShare;
  return { carrierShare, gatewayFee, merchantNet: amount - carrierShare - gatewayFee };
}

function sumSplit(split: RevenueSplit): bigint {
  return split.carrierShare + split.gatewayFee + split.merchantNet;
}

function clamp(value: bigint, min: bigint, max: bigint): bigint {
  if (value < min) return min;
  if (value > max) return max;
  return value;
}

/**
 * SPEC §4.5: the split reversed by a refund of `refund` out of captured `captured`, given what
 * of each part was already reversed. Proportional (half-even) for a partial refund; when the
 * refund completes the charge (alreadyRefunded + refund === captured) it returns exactly what
 * remains of each part, so the charge nets to zero.
 *
 * Proportionality is cumulative: after refunds totalling R, the reversed carrier share is
 * round_half_even(carrier_share × R / captured) (likewise the gateway fee), and this refund
 * reverses the difference from what was already reversed. For a first refund that is simply
 * round_half_even(part × refund / captured); over a series of refunds the running totals stay
 * within one minor unit of exact proportionality and never depend on how the refunds were cut.
 * The merchant part is the rest of the refund.
 *
 * Guarantees (needed by the ledger): every returned part is ≥ 0, the parts sum exactly to
 * `refund`, and no part is ever reversed beyond what the charge's split holds. Where rounding
 * would break one of these (only possible by a minor unit near the edges, e.g. a tiny
 * merchant_net), the gateway fee absorbs the difference first, then the carrier share.
 *
 * Throws `refund_exceeds_charge` when alreadyRefunded + refund > captured, and
 * `internal_error` for inconsistent inputs (a split not summing to `captured`, an
 * alreadyReversed not summing to alreadyRefunded or exceeding a part, refund ≤ 0).
 */
export function refundSplit(
  split: RevenueSplit,
  captured: bigint,
  alreadyRefunded: bigint,
  alreadyReversed: RevenueSplit,
  refund: bigint,
): RevenueSplit {
  if (captured <= 0n) throw internal(`refundSplit: captured must be > 0, got ${captured}`);
  if (refund <= 0n) throw internal(`refundSplit: refund must be > 0, got ${refund}`);
  if (alreadyRefunded < 0n) {
    throw internal(`refundSplit: alreadyRefunded must be >= 0, got ${alreadyRefunded}`);
  }
  if (split.carrierShare < 0n || split.gatewayFee < 0n || split.merchantNet < 0n) {
    throw internal('refundSplit: split parts must be >= 0');
  }
  if (sumSplit(split) !== captured) {
    throw internal('refundSplit: split parts do not sum to the captured amount');
  }
  if (sumSplit(alreadyReversed) !== alreadyRefunded) {
    throw internal('refundSplit: already reversed parts do not sum to alreadyRefunded');
  }
  const remaining: RevenueSplit = {
    carrierShare: split.carrierShare - alreadyReversed.carrierShare,
    gatewayFee: split.gatewayFee - alreadyReversed.gatewayFee,
    merchantNet: split.merchantNet - alreadyReversed.merchantNet,
  };
  const parts = [remaining.carrierShare, remaining.gatewayFee, remaining.merchantNet];
  const reversedParts = [
    alreadyReversed.carrierShare,
    alreadyReversed.gatewayFee,
    alreadyReversed.merchantNet,
  ];
  if (parts.some((p) => p < 0n) || reversedParts.some((p) => p < 0n)) {
    throw internal('refundSplit: already reversed parts are outside the split');
  }
  const remainingAmount = captured - alreadyRefunded;
  if (refund > remainingAmount) {
    throw new AppError(
      'refund_exceeds_charge',
      `A refund of ${refund} minor units exceeds the ${remainingAmount} minor units that ` +
        'remain refundable on this charge.',
      { param: 'amount' },
    );
  }
  if (refund === remainingAmount) return remaining;

  const refundedAfter = alreadyRefunded + refund;
  let carrier = clamp(
    roundHalfEven(split.carrierShare * refundedAfter, captured) - alreadyReversed.carrierShare,
    0n,
    remaining.carrierShare,
  );
  let fee = clamp(
    roundHalfEven(split.gatewayFee * refundedAfter, captured) - alreadyReversed.gatewayFee,
    0n,
    remaining.gatewayFee,
  );
  let merchant = refund - carrier - fee;
  if (merchant < 0n) {
    // Carrier + fee overshoot the refund: give back the excess, gateway fee first.
    let deficit = -merchant;
    const fromFee = deficit < fee ? deficit : fee;
    fee -= fromFee;
    deficit -= fromFee;
    carrier -= deficit; // feasible: carrier + fee = refund + deficit ≥ deficit
    merchant = 0n;
  } else if (merchant > remaining.merchantNet) {
    // Not enough merchant net left: the rest comes from the fee first, then the carrier.
    let excess = merchant - remaining.merchantNet;
    merchant = remaining.merchantNet;
    const feeRoom = remaining.gatewayFee - fee;
    const toFee = excess < feeRoom ? excess : feeRoom;
    fee += toFee;
    excess -= toFee;
    carrier += excess; // feasible: the remaining parts sum to more than the refund
  }
  return { carrierShare: carrier, gatewayFee: fee, merchantNet: merchant };
}
