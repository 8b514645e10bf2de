import { csvLine, csvText } from '../../lib/csv.js';
import { formatAmount } from '../money/money.js';

export type StatementStatus = 'open' | 'closed' | 'settled';

/** Counts and minor-unit sums as PostgreSQL returns them (int8 → string). */
export interface FigureColumns {
  charge_count: string;
  gross: string;
  refund_count: string;
  refunds: string;
  carrier_share: string;
  gateway_fee: string;
  merchant_net: string;
  owed_to_gateway: string;
}

export interface StatementRow {
  id: string;
  carrier_id: string;
  carrier_code: string;
  business_date: string;
  timezone: string;
  currency: string;
  period_start: Date;
  period_end: Date;
  status: StatementStatus;
  charge_count: string | null;
  refund_count: string | null;
  gross: string | null;
  refunds: string | null;
  carrier_share: string | null;
  gateway_fee: string | null;
  merchant_net: string | null;
  owed_to_gateway: string | null;
  closed_at: Date | null;
  settled_at: Date | null;
  payment_reference: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface LineRow extends FigureColumns {
  merchant_id: string;
  merchant_name: string;
}

export interface FiguresView {
  charge_count: number;
  gross: string;
  refund_count: number;
  refunds: string;
  carrier_share: string;
  gateway_fee: string;
  merchant_net: string;
  owed_to_gateway: string;
}

export interface LineView extends FiguresView {
  merchant_id: string;
  merchant_name: string;
}

export interface SettlementView {
  id: string;
  object: 'settlement';
  carrier: string;
  carrier_code: string;
  business_date: string;
  timezone: string;
  currency: string;
  period: { start: string; end: string };
  status: StatementStatus;
  /** True while open: the figures are what a close now would freeze, and may still change. */
  provisional: boolean;
  totals: FiguresView | null;
  lines?: LineView[];
  closed_at: string | null;
  settled_at: string | null;
  payment_reference: string | null;
  created_at: string;
  updated_at: string;
}

export function toFiguresView(f: FigureColumns, currency: string): FiguresView {
  const fmt = (v: string) => formatAmount(BigInt(v), currency);
  return {
    charge_count: Number(f.charge_count),
    gross: fmt(f.gross),
    refund_count: Number(f.refund_count),
    refunds: fmt(f.refunds),
    carrier_share: fmt(f.carrier_share),
    gateway_fee: fmt(f.gateway_fee),
    merchant_net: fmt(f.merchant_net),
    owed_to_gateway: fmt(f.owed_to_gateway),
  };
}

/** The frozen totals of a closed statement; null while it is open. */
export function frozenTotals(row: StatementRow): FigureColumns | null {
  if (row.status === 'open') return null;
  return {
    charge_count: row.charge_count!,
    gross: row.gross!,
    refund_count: row.refund_count!,
    refunds: row.refunds!,
    carrier_share: row.carrier_share!,
    gateway_fee: row.gateway_fee!,
    merchant_net: row.merchant_net!,
    owed_to_gateway: row.owed_to_gateway!,
  };
}

/** Sums per-merchant lines into statement totals (bigint, exact). */
export function sumLines(lines: FigureColumns[]): FigureColumns {
  const keys: (keyof FigureColumns)[] = [
    'charge_count',
    'gross',
    'refund_count',
    'refunds',
    'carrier_share',
    'gateway_fee',
    'merchant_net',
    'owed_to_gateway',
  ];
  const out = {} as FigureColumns;
  for (const k of keys) out[k] = lines.reduce((s, l) => s + BigInt(l[k]), 0n).toString();
  return out;
}

export function toSettlementView(
  row: StatementRow,
  figures?: { totals: FigureColumns; lines: LineRow[] },
): SettlementView {
  const totals = figures?.totals ?? frozenTotals(row);
  const view: SettlementView = {
    id: row.id,
    object: 'settlement',
    carrier: row.carrier_id,
    carrier_code: row.carrier_code,
    business_date: row.business_date,
    timezone: row.timezone,
    currency: row.currency,
    period: { start: row.period_start.toISOString(), end: row.period_end.toISOString() },
    status: row.status,
    provisional: row.status === 'open',
    totals: totals ? toFiguresView(totals, row.currency) : null,
    closed_at: row.closed_at?.toISOString() ?? null,
    settled_at: row.settled_at?.toISOString() ?? null,
    payment_reference: row.payment_reference,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
  if (figures) {
    view.lines = figures.lines.map((l) => ({
      merchant_id: l.merchant_id,
      merchant_name: l.merchant_name,
      ...toFiguresView(l, row.currency),
    }));
  }
  return view;
}

export const STATEMENT_CSV_HEADER = [
  'merchant_id',
  'merchant_name',
  'charge_count',
  'gross',
  'refund_count',
  'refunds',
  'carrier_share',
  'gateway_fee',
  'merchant_net',
  'owed_to_gateway',
];

/** One line per merchant, then a TOTAL line; amounts as decimal strings in the statement's currency. */
export function statementCsv(view: SettlementView): string {
  const figures = (f: FiguresView) => [
    String(f.charge_count),
    f.gross,
    String(f.refund_count),
    f.refunds,
    f.carrier_share,
    f.gateway_fee,
    f.merchant_net,
    f.owed_to_gateway,
  ];
  const out = [csvLine(STATEMENT_CSV_HEADER)];
  for (const l of view.lines ?? [])
    out.push(csvLine([l.merchant_id, csvText(l.merchant_name), ...figures(l)]));
  if (view.totals) out.push(csvLine(['TOTAL', '', ...figures(view.totals)]));
  return out.join('');
}
