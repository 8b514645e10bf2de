import { csvLine, csvText } from '../../lib/csv.js';

export const EXCEPTION_CATEGORIES = [
  'amount_mismatch',
  'missing_at_carrier',
  'missing_at_gateway',
  'duplicate',
  'invalid_row',
] as const;
export type ExceptionCategory = (typeof EXCEPTION_CATEGORIES)[number];

export interface ReconciliationCounts {
  matched: number;
  amount_mismatch: number;
  missing_at_carrier: number;
  missing_at_gateway: number;
  duplicate: number;
  invalid_row: number;
}

export interface ReconciliationRow {
  id: string;
  carrier_id: string;
  status: 'completed';
  source: 'api' | 'cli';
  period_start: Date | null;
  period_end: Date | null;
  bytes: string;
  rows_total: string;
  matched: string;
  amount_mismatch: string;
  missing_at_carrier: string;
  missing_at_gateway: string;
  duplicate: string;
  invalid_row: string;
  created_at: Date;
  completed_at: Date;
}

export interface ReconciliationView {
  id: string;
  object: 'reconciliation';
  carrier: string;
  status: 'completed';
  source: 'api' | 'cli';
  /** [start, end): gateway records in it that the file lacks are missing_at_carrier. */
  period: { start: string; end: string } | null;
  bytes: number;
  rows: number;
  counts: ReconciliationCounts;
  created_at: string;
  completed_at: string;
}

export function toReconciliationView(r: ReconciliationRow): ReconciliationView {
  return {
    id: r.id,
    object: 'reconciliation',
    carrier: r.carrier_id,
    status: r.status,
    source: r.source,
    period:
      r.period_start && r.period_end
        ? { start: r.period_start.toISOString(), end: r.period_end.toISOString() }
        : null,
    bytes: Number(r.bytes),
    rows: Number(r.rows_total),
    counts: {
      matched: Number(r.matched),
      amount_mismatch: Number(r.amount_mismatch),
      missing_at_carrier: Number(r.missing_at_carrier),
      missing_at_gateway: Number(r.missing_at_gateway),
      duplicate: Number(r.duplicate),
      invalid_row: Number(r.invalid_row),
    },
    created_at: r.created_at.toISOString(),
    completed_at: r.completed_at.toISOString(),
  };
}

export interface ExceptionRow {
  seq: string;
  category: ExceptionCategory;
  line: string | null;
  gateway_ref: string | null;
  carrier_ref: string | null;
  type: string | null;
  field: string | null;
  carrier_value: string | null;
  gateway_value: string | null;
  reason: string;
}

export const EXCEPTIONS_CSV_HEADER = csvLine([
  'category',
  'line',
  'gateway_ref',
  'carrier_ref',
  'type',
  'field',
  'carrier_value',
  'gateway_value',
  'reason',
]);

/** One exception as a CSV line; text the carrier typed is guarded against formula injection. */
export function exceptionCsvLine(e: ExceptionRow): string {
  return csvLine([
    e.category,
    e.line ?? '',
    csvText(e.gateway_ref),
    csvText(e.carrier_ref),
    e.type ?? '',
    e.field ?? '',
    e.carrier_value ?? '',
    e.gateway_value ?? '',
    csvText(e.reason),
  ]);
}
