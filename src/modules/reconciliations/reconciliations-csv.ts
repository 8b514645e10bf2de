/**
 * Reading a carrier's reconciliation file (SPEC §6.2), one row at a time: the header fixes the
 * column positions, and each data row is either valid (normalised for the database) or invalid
 * with every reason found, so a broken row never stops the run.
 */
import { AppError } from '../../errors.js';
import { isE164 } from '../../lib/msisdn.js';
import { describeForbiddenChar, escapeForbidden, forbiddenCharAt } from '../../lib/text.js';
import { formatAmount, isSupportedCurrency, parseAmount } from '../money/money.js';

export const RECONCILIATION_COLUMNS = [
  'carrier_ref',
  'gateway_ref',
  'msisdn',
  'type',
  'amount',
  'currency',
  'occurred_at',
] as const;
export type ReconciliationColumn = (typeof RECONCILIATION_COLUMNS)[number];
export type ColumnIndex = Record<ReconciliationColumn, number>;

export const MAX_GATEWAY_REF_LENGTH = 64;
export const MAX_CARRIER_REF_LENGTH = 200;

export interface ValidRow {
  line: number;
  gatewayRef: string;
  carrierRef: string;
  msisdn: string;
  type: 'charge' | 'refund';
  /** Decimal string in the row's currency, normalised ("12.5" USD → "12.50"). */
  amount: string;
  currency: string;
  /** RFC 3339 with the offset written as ±HH:MM, microseconds kept. */
  occurredAt: string;
  /** occurredAt in epoch milliseconds (sub-millisecond digits dropped). */
  occurredMs: number;
}

export interface InvalidRow {
  line: number;
  gatewayRef: string | null;
  carrierRef: string | null;
  reason: string;
}

export type ReadRow = { valid: ValidRow } | { invalid: InvalidRow };

/** Maps header names (any order, case and surrounding spaces ignored) to positions. */
export function readHeader(fields: string[]): ColumnIndex {
  const names = fields.map((f) => f.trim().toLowerCase());
  const missing = RECONCILIATION_COLUMNS.filter((c) => !names.includes(c));
  const unknown = names.filter((n) => !(RECONCILIATION_COLUMNS as readonly string[]).includes(n));
  const repeated = names.filter((n, i) => names.indexOf(n) !== i);
  if (missing.length > 0 || unknown.length > 0 || repeated.length > 0) {
    const problems = [
      missing.length > 0 ? `missing ${missing.join(', ')}` : '',
      unknown.length > 0 ? `unknown ${unknown.map((u) => JSON.stringify(u)).join(', ')}` : '',
      repeated.length > 0 ? `repeated ${repeated.join(', ')}` : '',
    ].filter(Boolean);
    throw new AppError(
      'validation_failed',
      `The CSV header must be ${RECONCILIATION_COLUMNS.join(',')} (${problems.join('; ')}).`,
      { param: 'body' },
    );
  }
  const index = {} as ColumnIndex;
  for (const c of RECONCILIATION_COLUMNS) index[c] = names.indexOf(c);
  return index;
}

function shown(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/** Parses an RFC 3339 timestamp with an explicit offset; undefined when it is not one. */
export function parseTimestamp(value: string): { text: string; ms: number } | undefined {
  const m = TIMESTAMP.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = m[7] ?? '';
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  let offset = 'Z';
  if (!m[8]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 14 || om > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
    offset = `${m[9]}${m[10]}:${m[11]}`;
  }
  const ms =
    Date.UTC(
      year,
      month - 1,
      day,
      hour,
      minute,
      second,
      Number(fraction.padEnd(3, '0').slice(0, 3)),
    ) -
    offsetMinutes * 60_000;
  const date = value.slice(0, 10);
  const time = `${m[4]}:${m[5]}:${m[6]}${fraction ? `.${fraction}` : ''}`;
  return { text: `${date}T${time}${offset}`, ms };
}

/** Validates one data row; `line` is its line number in the file (the header is line 1). */
export function readRow(fields: string[], index: ColumnIndex, line: number): ReadRow {
  const at = (c: ReconciliationColumn) => (fields[index[c]] ?? '').trim();
  const rawRef = fields[index.gateway_ref]?.trim();
  const rawCarrierRef = fields[index.carrier_ref]?.trim();
  // Refs are kept on an invalid row to help find it; a forbidden character is shown escaped.
  const invalid = (reason: string): ReadRow => ({
    invalid: {
      line,
      gatewayRef: rawRef ? escapeForbidden(rawRef.slice(0, MAX_GATEWAY_REF_LENGTH)) : null,
      carrierRef: rawCarrierRef
        ? escapeForbidden(rawCarrierRef.slice(0, MAX_CARRIER_REF_LENGTH))
        : null,
      reason: escapeForbidden(reason),
    },
  });
  // The text rule of every other input (SPEC §10): a NUL or control character fails its row.
  const bad = fields
    .map((text, i) => ({ at: forbiddenCharAt(text), text, i }))
    .filter((f) => f.at !== -1)
    .map(({ at, text, i }) => {
      const column = RECONCILIATION_COLUMNS.find((c) => index[c] === i) ?? `column ${i + 1}`;
      return `${column} contains ${describeForbiddenChar(text, at)}`;
    });
  if (bad.length > 0) return invalid(bad.join('; '));
  if (fields.length !== RECONCILIATION_COLUMNS.length) {
    return invalid(
      `wrong column count: expected ${RECONCILIATION_COLUMNS.length}, got ${fields.length}`,
    );
  }
  const reasons: string[] = [];
  const gatewayRef = at('gateway_ref');
  if (gatewayRef === '') reasons.push('gateway_ref is empty');
  else if (gatewayRef.length > MAX_GATEWAY_REF_LENGTH)
    reasons.push(`gateway_ref is longer than ${MAX_GATEWAY_REF_LENGTH} characters`);
  const carrierRef = at('carrier_ref');
  if (carrierRef.length > MAX_CARRIER_REF_LENGTH)
    reasons.push(`carrier_ref is longer than ${MAX_CARRIER_REF_LENGTH} characters`);

  const rawMsisdn = at('msisdn').replace(/[\s-]/g, '');
  const msisdn = rawMsisdn.startsWith('+') ? rawMsisdn : `+${rawMsisdn}`;
  if (!isE164(msisdn)) reasons.push(`bad msisdn ${shown(at('msisdn'))}`);

  const type = at('type').toLowerCase();
  if (type !== 'charge' && type !== 'refund')
    reasons.push(`unknown type ${shown(at('type'))} (charge or refund)`);

  const currency = at('currency').toUpperCase();
  let amount = '';
  if (!isSupportedCurrency(currency)) {
    reasons.push(`unknown currency ${shown(at('currency'))}`);
  } else {
    try {
      amount = formatAmount(parseAmount(at('amount'), currency), currency);
    } catch (err) {
      const detail = err instanceof AppError ? err.message.replace(/^amount /, '') : 'invalid';
      reasons.push(`bad amount ${shown(at('amount'))}: ${detail}`);
    }
  }

  const occurred = parseTimestamp(at('occurred_at'));
  if (!occurred)
    reasons.push(
      `bad date ${shown(at('occurred_at'))}: occurred_at must be RFC 3339 with an offset, e.g. 2025-01-31T23:59:59+07:00`,
    );

  if (reasons.length > 0 || !occurred) return invalid(reasons.join('; '));
  return {
    valid: {
      line,
      gatewayRef,
      carrierRef,
      msisdn,
      type: type as 'charge' | 'refund',
      amount,
      currency,
      occurredAt: occurred.text,
      occurredMs: occurred.ms,
    },
  };
}
