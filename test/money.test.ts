import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Decimal } from 'decimal.js';
import { AppError } from '../src/errors.js';
import {
  CURRENCY_EXPONENTS,
  MAX_AMOUNT_MINOR,
  currencyExponent,
  formatAmount,
  isSupportedCurrency,
  parseAmount,
  parseNonNegativeAmount,
  refundSplit,
  roundHalfEven,
  splitRevenue,
  type RevenueSplit,
} from '../src/modules/money/money.js';

/** Runs fn and returns the AppError it throws (fails the test if it does not throw one). */
function appErrorOf(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected an AppError to be thrown');
}

function expectInvalidAmount(value: unknown, currency: string, param = 'amount'): AppError {
  const err = appErrorOf(() => parseAmount(value, currency, param));
  expect(err.code).toBe('invalid_amount');
  expect(err.status).toBe(400);
  expect(err.param).toBe(param);
  expect(err.message.length).toBeGreaterThan(10);
  return err;
}

const ZERO: RevenueSplit = { carrierShare: 0n, gatewayFee: 0n, merchantNet: 0n };

describe('currencies', () => {
  it('uses ISO 4217 exponents', () => {
    const expected: Record<string, number> = {
      VND: 0,
      USD: 2,
      EUR: 2,
      IDR: 2,
      PHP: 2,
      THB: 2,
      JPY: 0,
      KRW: 0,
      SGD: 2,
      MYR: 2,
      GBP: 2,
      KHR: 2,
      LAK: 2,
      MMK: 2,
    };
    for (const [code, exponent] of Object.entries(expected)) {
      expect(CURRENCY_EXPONENTS[code]).toBe(exponent);
      expect(currencyExponent(code)).toBe(exponent);
      expect(isSupportedCurrency(code)).toBe(true);
    }
  });

  it('rejects unknown, lower-case and prototype-property currencies', () => {
    for (const code of ['XXX', 'vnd', '', 'constructor', '__proto__', 'toString', 'US D']) {
      expect(isSupportedCurrency(code)).toBe(false);
      const err = appErrorOf(() => currencyExponent(code));
      expect(err.code).toBe('unsupported_currency');
      expect(err.param).toBe('currency');
    }
  });

  it('parseAmount with an unknown currency throws unsupported_currency', () => {
    const err = appErrorOf(() => parseAmount('100', 'ABC'));
    expect(err.code).toBe('unsupported_currency');
    expect(err.status).toBe(400);
    expect(err.param).toBe('currency');
    expect(appErrorOf(() => formatAmount(1n, 'ABC')).code).toBe('unsupported_currency');
  });
});

describe('parseAmount', () => {
  it('parses valid amounts into minor units', () => {
    expect(parseAmount('15000', 'VND')).toBe(15000n);
    expect(parseAmount('12.50', 'USD')).toBe(1250n);
    expect(parseAmount('12.5', 'USD')).toBe(1250n);
    expect(parseAmount('12', 'USD')).toBe(1200n);
    expect(parseAmount('0.01', 'USD')).toBe(1n);
    expect(parseAmount('1', 'VND')).toBe(1n);
    expect(parseAmount('1.234', 'KWD')).toBe(1234n);
    expect(parseAmount('500', 'JPY')).toBe(500n);
  });

  it('refuses leading zeros (SPEC §10): only the one zero of "0.50"', () => {
    for (const [value, currency] of [
      ['007', 'VND'],
      ['015000', 'VND'],
      ['00.50', 'USD'],
      ['01.5', 'USD'],
    ] as const) {
      expect(expectInvalidAmount(value, currency).message).toMatch(/leading zeros/);
    }
    expect(parseAmount('0.50', 'USD')).toBe(50n);
    expect(parseAmount('0.5', 'USD')).toBe(50n);
  });

  it('rejects zero', () => {
    expectInvalidAmount('0', 'VND');
    expectInvalidAmount('0.00', 'USD');
    expectInvalidAmount('000', 'VND');
    expect(expectInvalidAmount('0', 'USD').message).toMatch(/greater than zero/);
  });

  it('rejects negative, signed, exponent, hex and malformed strings', () => {
    for (const value of [
      '-1',
      '+1',
      '1e3',
      '1E3',
      '0x10',
      ' 1',
      '1 ',
      '',
      'abc',
      '.5',
      '5.',
      '1.2.3',
      '1,000',
      '1_000',
      'Infinity',
      'NaN',
      '١٢٣', // Arabic-Indic digits
      '12\n',
    ]) {
      expectInvalidAmount(value, 'USD');
    }
  });

  it('rejects more decimals than the currency allows, even zeros', () => {
    expect(expectInvalidAmount('1.5', 'VND').message).toMatch(/whole number/);
    expectInvalidAmount('1.0', 'VND');
    expect(expectInvalidAmount('1.005', 'USD').message).toMatch(/at most 2/);
    expectInvalidAmount('1.500', 'USD');
    expectInvalidAmount('1.0', 'JPY');
    expectInvalidAmount('1.2345', 'KWD');
  });

  it('rejects non-string values (JSON numbers, null, objects, …)', () => {
    const err = expectInvalidAmount(15000, 'VND');
    expect(err.message).toMatch(/not a number/);
    for (const value of [
      null,
      undefined,
      {},
      { amount: '1' },
      ['1'],
      true,
      15000n,
      12.5,
      Number.NaN,
    ]) {
      expectInvalidAmount(value, 'USD');
    }
  });

  it('rejects 30-digit and over-the-cap amounts with invalid_amount', () => {
    const thirty = '9'.repeat(30);
    expect(expectInvalidAmount(thirty, 'VND').message).toMatch(/maximum/);
    expectInvalidAmount('123456789012345678901234567890', 'USD');
    expectInvalidAmount('9223372036854775808', 'VND'); // BIGINT max + 1
    expectInvalidAmount('9223372036854775807', 'VND');
    // The cap is 10^15 minor units inclusive.
    expect(parseAmount('1000000000000000', 'VND')).toBe(MAX_AMOUNT_MINOR);
    expectInvalidAmount('1000000000000001', 'VND');
    expect(parseAmount('10000000000000.00', 'USD')).toBe(MAX_AMOUNT_MINOR);
    expect(expectInvalidAmount('10000000000000.01', 'USD').message).toContain(
      '10000000000000.00 USD',
    );
  });

  it('rejects strings longer than 40 characters', () => {
    expect(expectInvalidAmount('1'.repeat(41), 'VND').message).toMatch(/too long/);
    expect(expectInvalidAmount('0'.repeat(40) + '1', 'VND').message).toMatch(/too long/);
    // 40 characters of digits is still parsed (and then refused for its size, not its length).
    expect(expectInvalidAmount('9'.repeat(40), 'VND').message).toMatch(/exceeds the maximum/);
  });

  it('reports the given param name', () => {
    const err = expectInvalidAmount('abc', 'USD', 'limits.prepaid.per_transaction_max');
    expect(err.message).toContain('limits.prepaid.per_transaction_max');
  });

  it('parseNonNegativeAmount allows zero but keeps every other rule', () => {
    expect(parseNonNegativeAmount('0', 'VND')).toBe(0n);
    expect(parseNonNegativeAmount('0.00', 'USD')).toBe(0n);
    expect(parseNonNegativeAmount('12.50', 'USD', 'min_amount')).toBe(1250n);
    for (const value of ['-1', '1.5', '', 15000, null]) {
      const err = appErrorOf(() => parseNonNegativeAmount(value, 'VND', 'credit_limit'));
      expect(err.code).toBe('invalid_amount');
      expect(err.param).toBe('credit_limit');
    }
  });
});

describe('formatAmount', () => {
  it('formats with exactly the currency exponent', () => {
    expect(formatAmount(15000n, 'VND')).toBe('15000');
    expect(formatAmount(1250n, 'USD')).toBe('12.50');
    expect(formatAmount(-1250n, 'USD')).toBe('-12.50');
    expect(formatAmount(5n, 'USD')).toBe('0.05');
    expect(formatAmount(-5n, 'USD')).toBe('-0.05');
    expect(formatAmount(0n, 'USD')).toBe('0.00');
    expect(formatAmount(0n, 'VND')).toBe('0');
    expect(formatAmount(-7n, 'VND')).toBe('-7');
    expect(formatAmount(1234n, 'KWD')).toBe('1.234');
  });

  it('round-trips generated valid amounts (property)', () => {
    const currencies = Object.keys(CURRENCY_EXPONENTS);
    fc.assert(
      fc.property(
        fc.constantFrom(...currencies),
        fc.bigInt({ min: 1n, max: MAX_AMOUNT_MINOR }),
        (currency, minor) => {
          const s = formatAmount(minor, currency);
          expect(s).toMatch(/^[0-9]+(\.[0-9]+)?$/);
          expect(parseAmount(s, currency)).toBe(minor);
          expect(formatAmount(parseAmount(s, currency), currency)).toBe(s);
        },
      ),
    );
  });

  it('round-trips generated amount strings (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('VND', 'USD', 'KWD'),
        fc.stringMatching(/^[1-9][0-9]{0,9}$/),
        fc.stringMatching(/^[0-9]{0,3}$/),
        (currency, whole, rawFraction) => {
          const exponent = currencyExponent(currency);
          const fraction = rawFraction.slice(0, exponent);
          const s = fraction === '' ? whole : `${whole}.${fraction}`;
          const canonical = exponent === 0 ? whole : `${whole}.${fraction.padEnd(exponent, '0')}`;
          expect(formatAmount(parseAmount(s, currency), currency)).toBe(canonical);
        },
      ),
    );
  });
});

describe('roundHalfEven', () => {
  it('rounds ties to even', () => {
    expect(roundHalfEven(5n, 2n)).toBe(2n); // 2.5
    expect(roundHalfEven(7n, 2n)).toBe(4n); // 3.5
    expect(roundHalfEven(-5n, 2n)).toBe(-2n); // -2.5
    expect(roundHalfEven(-7n, 2n)).toBe(-4n); // -3.5
    expect(roundHalfEven(1n, 2n)).toBe(0n); // 0.5
    expect(roundHalfEven(3n, 2n)).toBe(2n); // 1.5
    expect(roundHalfEven(5n, -2n)).toBe(-2n);
    expect(roundHalfEven(-5n, -2n)).toBe(2n);
  });

  it('rounds non-ties to nearest and keeps exact values', () => {
    expect(roundHalfEven(10n, 5n)).toBe(2n);
    expect(roundHalfEven(-10n, 5n)).toBe(-2n);
    expect(roundHalfEven(0n, 7n)).toBe(0n);
    expect(roundHalfEven(26n, 10n)).toBe(3n); // 2.6
    expect(roundHalfEven(24n, 10n)).toBe(2n); // 2.4
    expect(roundHalfEven(-26n, 10n)).toBe(-3n);
    expect(roundHalfEven(-24n, 10n)).toBe(-2n);
    expect(roundHalfEven(2n, 3n)).toBe(1n);
    expect(roundHalfEven(10n ** 30n + 1n, 2n)).toBe(10n ** 30n / 2n); // exact beyond 2^53
  });

  it('throws on division by zero', () => {
    expect(appErrorOf(() => roundHalfEven(1n, 0n)).code).toBe('internal_error');
  });

  it('agrees with decimal.js ROUND_HALF_EVEN (property)', () => {
    const D = Decimal.clone({ precision: 100, rounding: Decimal.ROUND_HALF_EVEN });
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }),
        fc.bigInt({ min: -(10n ** 6n), max: 10n ** 6n }).filter((d) => d !== 0n),
        (n, d) => {
          const expected = new D(n.toString())
            .div(d.toString())
            .toDecimalPlaces(0, Decimal.ROUND_HALF_EVEN);
          expect(roundHalfEven(n, d).toString()).toBe(expected.toFixed(0).replace(/^-0$/, '0'));
        },
      ),
    );
  });
});

describe('splitRevenue', () => {
  it('splits per SPEC §4.6', () => {
    expect(splitRevenue(10000n, 3000, 250)).toEqual({
      carrierShare: 3000n,
      gatewayFee: 250n,
      merchantNet: 6750n,
    });
    expect(splitRevenue(15000n, 3000, 250)).toEqual({
      carrierShare: 4500n,
      gatewayFee: 375n,
      merchantNet: 10125n,
    });
    expect(splitRevenue(0n, 3000, 250)).toEqual(ZERO);
    expect(splitRevenue(999n, 0, 0)).toEqual({
      carrierShare: 0n,
      gatewayFee: 0n,
      merchantNet: 999n,
    });
    expect(splitRevenue(999n, 10000, 0)).toEqual({
      carrierShare: 999n,
      gatewayFee: 0n,
      merchantNet: 0n,
    });
  });

  it('rounds ties half-even', () => {
    expect(splitRevenue(5n, 5000, 0).carrierShare).toBe(2n); // 2.5 → 2
    expect(splitRevenue(15n, 5000, 0).carrierShare).toBe(8n); // 7.5 → 8
    expect(splitRevenue(5n, 0, 5000).gatewayFee).toBe(2n);
    expect(splitRevenue(15n, 0, 5000).gatewayFee).toBe(8n);
    // 1 × 5000/10000 = 0.5 → 0; 3 × 5000/10000 = 1.5 → 2
    expect(splitRevenue(1n, 5000, 0)).toEqual({
      carrierShare: 0n,
      gatewayFee: 0n,
      merchantNet: 1n,
    });
    expect(splitRevenue(3n, 5000, 0)).toEqual({
      carrierShare: 2n,
      gatewayFee: 0n,
      merchantNet: 1n,
    });
    // 125 × 250/10000 = 3.125 → 3; 125 × 3000/10000 = 37.5 → 38
    expect(splitRevenue(125n, 3000, 250)).toEqual({
      carrierShare: 38n,
      gatewayFee: 3n,
      merchantNet: 84n,
    });
  });

  it('never lets merchant_net go negative when the bps add up to 10000', () => {
    // 3 × 5000/10000 = 1.5 → 2 twice would be 4 > 3: the gateway fee absorbs the extra unit.
    expect(splitRevenue(3n, 5000, 5000)).toEqual({
      carrierShare: 2n,
      gatewayFee: 1n,
      merchantNet: 0n,
    });
    expect(splitRevenue(7n, 5000, 5000)).toEqual({
      carrierShare: 4n,
      gatewayFee: 3n,
      merchantNet: 0n,
    });
  });

  it('rejects invalid inputs', () => {
    for (const fn of [
      () => splitRevenue(-1n, 3000, 250),
      () => splitRevenue(100n, -1, 250),
      () => splitRevenue(100n, 3000, 10001),
      () => splitRevenue(100n, 1.5, 0),
      () => splitRevenue(100n, 6000, 5000),
    ]) {
      expect(appErrorOf(fn).code).toBe('internal_error');
    }
  });

  it('parts sum exactly to the amount and are all >= 0 (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: MAX_AMOUNT_MINOR }),
        fc.integer({ min: 0, max: 10000 }),
        fc.integer({ min: 0, max: 10000 }),
        (amount, a, b) => {
          const share = a;
          const fee = Math.min(b, 10000 - a);
          const split = splitRevenue(amount, share, fee);
          expect(split.carrierShare + split.gatewayFee + split.merchantNet).toBe(amount);
          expect(split.carrierShare).toBeGreaterThanOrEqual(0n);
          expect(split.gatewayFee).toBeGreaterThanOrEqual(0n);
          expect(split.merchantNet).toBeGreaterThanOrEqual(0n);
          // carrier_share is exactly the SPEC formula.
          expect(split.carrierShare).toBe(roundHalfEven(amount * BigInt(share), 10000n));
          // gateway_fee is the SPEC formula except in the edge case documented on splitRevenue.
          const formulaFee = roundHalfEven(amount * BigInt(fee), 10000n);
          if (split.gatewayFee !== formulaFee) {
            expect(share + fee).toBe(10000);
            expect(split.gatewayFee).toBe(formulaFee - 1n);
            expect(split.merchantNet).toBe(0n);
          }
        },
      ),
    );
  });

  it('small amounts also hit the edge cases (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 50n }),
        fc.constantFrom(0, 2500, 5000, 7500, 10000),
        fc.constantFrom(0, 2500, 5000, 7500, 10000),
        (amount, share, fee) => {
          fc.pre(share + fee <= 10000);
          const split = splitRevenue(amount, share, fee);
          expect(split.carrierShare + split.gatewayFee + split.merchantNet).toBe(amount);
          expect(split.merchantNet).toBeGreaterThanOrEqual(0n);
          expect(split.gatewayFee).toBeGreaterThanOrEqual(0n);
        },
      ),
    );
  });
});

describe('refundSplit', () => {
  const split = splitRevenue(10000n, 3000, 250); // 3000 / 250 / 6750

  it('a full refund reverses the whole split', () => {
    expect(refundSplit(split, 10000n, 0n, ZERO, 10000n)).toEqual(split);
  });

  it('a partial refund reverses proportionally (half-even)', () => {
    expect(refundSplit(split, 10000n, 0n, ZERO, 5000n)).toEqual({
      carrierShare: 1500n,
      gatewayFee: 125n,
      merchantNet: 3375n,
    });
    // 3333 × 3000/10000 = 999.9 → 1000; 3333 × 250/10000 = 83.325 → 83
    expect(refundSplit(split, 10000n, 0n, ZERO, 3333n)).toEqual({
      carrierShare: 1000n,
      gatewayFee: 83n,
      merchantNet: 2250n,
    });
    // Tie: captured 10, carrier 5 (5000 bps), refund 1 → 0.5 → 0; refund 3 → 1.5 → 2
    const s10 = splitRevenue(10n, 5000, 0);
    expect(refundSplit(s10, 10n, 0n, ZERO, 1n).carrierShare).toBe(0n);
    expect(refundSplit(s10, 10n, 0n, ZERO, 3n).carrierShare).toBe(2n);
  });

  it('the refund that completes the charge returns exactly what remains', () => {
    const first = refundSplit(split, 10000n, 0n, ZERO, 3333n);
    const second = refundSplit(split, 10000n, 3333n, first, 6667n);
    expect(second).toEqual({
      carrierShare: 2000n,
      gatewayFee: 167n,
      merchantNet: 4500n,
    });
  });

  it('is cumulative: after refunds totalling R the reversal is round(part × R / captured)', () => {
    // captured 10, carrier 5: refunds of 3, 3, 3 reverse 2, 1, 1 (cumulative 1.5→2, 3→3, 4.5→4)
    const s10 = splitRevenue(10n, 5000, 0);
    let reversed = ZERO;
    const got: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const r = refundSplit(s10, 10n, BigInt(i) * 3n, reversed, 3n);
      got.push(r.carrierShare);
      reversed = {
        carrierShare: reversed.carrierShare + r.carrierShare,
        gatewayFee: reversed.gatewayFee + r.gatewayFee,
        merchantNet: reversed.merchantNet + r.merchantNet,
      };
    }
    expect(got).toEqual([2n, 1n, 1n]);
    expect(reversed.carrierShare).toBe(4n); // round_half_even(5 × 9 / 10) = round(4.5) = 4
    const last = refundSplit(s10, 10n, 9n, reversed, 1n);
    expect(last).toEqual({ carrierShare: 1n, gatewayFee: 0n, merchantNet: 0n });
  });

  it('rejects refunds beyond the captured amount and inconsistent inputs', () => {
    const over = appErrorOf(() => refundSplit(split, 10000n, 9000n, ZERO, 1001n));
    expect(over.code).toBe('internal_error'); // alreadyReversed does not match alreadyRefunded
    const half = refundSplit(split, 10000n, 0n, ZERO, 5000n);
    const err = appErrorOf(() => refundSplit(split, 10000n, 5000n, half, 5001n));
    expect(err.code).toBe('refund_exceeds_charge');
    expect(err.status).toBe(409);
    expect(appErrorOf(() => refundSplit(split, 10000n, 0n, ZERO, 0n)).code).toBe('internal_error');
    expect(appErrorOf(() => refundSplit(split, 9999n, 0n, ZERO, 1n)).code).toBe('internal_error');
    const bogus = { carrierShare: 3001n, gatewayFee: -1n, merchantNet: 0n };
    expect(appErrorOf(() => refundSplit(split, 10000n, 3000n, bogus, 1n)).code).toBe(
      'internal_error',
    );
  });

  it('any sequence of partial refunds reverses exactly the original split (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 12n }),
        fc.integer({ min: 0, max: 10000 }),
        fc.integer({ min: 0, max: 10000 }),
        fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 25 }),
        (captured, a, b, weights) => {
          const share = a;
          const fee = Math.min(b, 10000 - a);
          const split = splitRevenue(captured, share, fee);
          // Cut `captured` into positive refunds proportional to the weights (last takes the rest).
          const total = BigInt(weights.reduce((x, y) => x + y, 0));
          const refunds: bigint[] = [];
          let allotted = 0n;
          for (const w of weights.slice(0, -1)) {
            const r = (captured * BigInt(w)) / total;
            if (r > 0n && allotted + r < captured) {
              refunds.push(r);
              allotted += r;
            }
          }
          refunds.push(captured - allotted);
          expect(refunds.reduce((x, y) => x + y, 0n)).toBe(captured);

          let refunded = 0n;
          let reversed: RevenueSplit = { ...ZERO };
          for (const refund of refunds) {
            const part = refundSplit(split, captured, refunded, reversed, refund);
            expect(part.carrierShare + part.gatewayFee + part.merchantNet).toBe(refund);
            expect(part.carrierShare).toBeGreaterThanOrEqual(0n);
            expect(part.gatewayFee).toBeGreaterThanOrEqual(0n);
            expect(part.merchantNet).toBeGreaterThanOrEqual(0n);
            refunded += refund;
            reversed = {
              carrierShare: reversed.carrierShare + part.carrierShare,
              gatewayFee: reversed.gatewayFee + part.gatewayFee,
              merchantNet: reversed.merchantNet + part.merchantNet,
            };
            expect(reversed.carrierShare).toBeLessThanOrEqual(split.carrierShare);
            expect(reversed.gatewayFee).toBeLessThanOrEqual(split.gatewayFee);
            expect(reversed.merchantNet).toBeLessThanOrEqual(split.merchantNet);
          }
          expect(refunded).toBe(captured);
          expect(reversed).toEqual(split);
        },
      ),
    );
  });

  it('small amounts with many unit refunds stay within bounds (property)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 40n }),
        fc.constantFrom(0, 1, 2500, 3333, 5000, 6667, 9999, 10000),
        fc.constantFrom(0, 1, 2500, 3333, 5000, 6667, 9999, 10000),
        fc.array(fc.bigInt({ min: 1n, max: 7n }), { minLength: 1, maxLength: 40 }),
        (captured, share, fee, cuts) => {
          fc.pre(share + fee <= 10000);
          const split = splitRevenue(captured, share, fee);
          let refunded = 0n;
          let reversed: RevenueSplit = { ...ZERO };
          const refunds = [...cuts, captured];
          for (const cut of refunds) {
            const refund = cut < captured - refunded ? cut : captured - refunded;
            if (refund === 0n) break;
            const part = refundSplit(split, captured, refunded, reversed, refund);
            expect(part.carrierShare + part.gatewayFee + part.merchantNet).toBe(refund);
            expect(part.carrierShare >= 0n && part.gatewayFee >= 0n && part.merchantNet >= 0n).toBe(
              true,
            );
            refunded += refund;
            reversed = {
              carrierShare: reversed.carrierShare + part.carrierShare,
              gatewayFee: reversed.gatewayFee + part.gatewayFee,
              merchantNet: reversed.merchantNet + part.merchantNet,
            };
          }
          expect(refunded).toBe(captured);
          expect(reversed).toEqual(split);
        },
      ),
    );
  });
});
