export const EVENT_TYPES = [
  'charge.succeeded',
  'charge.reserved',
  'charge.pending_validation',
  'charge.denied',
  'charge.cancelled',
  'refund.succeeded',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export type DeliveryStatus = 'pending' | 'delivering' | 'delivered' | 'failed' | 'skipped';

export interface EventRow {
  id: string;
  /** int8 arrives as a string. */
  sequence: string;
  merchant_id: string;
  type: EventType;
  subject_id: string;
  data: Record<string, unknown>;
  created_at: Date;
  delivery_status: DeliveryStatus;
  attempts: number;
  retry_base: number;
  retry_started_at: Date;
  next_attempt_at: Date | null;
  lease_id: string | null;
  last_attempt_at: Date | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: Date | null;
}

export interface AttemptRow {
  id: string;
  event_id: string;
  attempted_at: Date;
  url: string;
  http_status: number | null;
  latency_ms: number;
  error: string | null;
}

export interface AttemptView {
  attempted_at: string;
  url: string;
  status: number | null;
  latency_ms: number;
  error: string | null;
}

export interface EventView {
  id: string;
  type: EventType;
  subject: string;
  sequence: string;
  created_at: string;
  data: Record<string, unknown>;
  delivery: {
    status: DeliveryStatus;
    attempts: number;
    next_attempt_at: string | null;
    last_attempt_at: string | null;
    last_status: number | null;
    last_error: string | null;
    delivered_at: string | null;
  };
  /** Present when one event is read: every delivery attempt, oldest first. */
  attempt_history?: AttemptView[];
}

/** The CloudEvents `type` prefix: reverse-DNS, as the CloudEvents spec recommends. */
export const CLOUDEVENT_TYPE_PREFIX = 'com.dcbgateway.';

/**
 * Sequences are zero-padded to 20 digits so that they compare the same as strings and as
 * numbers (the CloudEvents sequence extension orders lexicographically).
 */
export function formatSequence(sequence: string): string {
  return sequence.padStart(20, '0');
}

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

export function toAttemptView(row: AttemptRow): AttemptView {
  return {
    attempted_at: row.attempted_at.toISOString(),
    url: row.url,
    status: row.http_status,
    latency_ms: row.latency_ms,
    error: row.error,
  };
}

export function toEventView(row: EventRow, attempts?: AttemptRow[]): EventView {
  return {
    id: row.id,
    type: row.type,
    subject: row.subject_id,
    sequence: formatSequence(row.sequence),
    created_at: row.created_at.toISOString(),
    data: row.data,
    delivery: {
      status: row.delivery_status,
      attempts: row.attempts,
      // While a dispatcher holds the event, next_attempt_at is its lease, not a schedule.
      next_attempt_at: row.delivery_status === 'pending' ? iso(row.next_attempt_at) : null,
      last_attempt_at: iso(row.last_attempt_at),
      last_status: row.last_status,
      last_error: row.last_error,
      delivered_at: iso(row.delivered_at),
    },
    ...(attempts ? { attempt_history: attempts.map(toAttemptView) } : {}),
  };
}

/** The body POSTed to the merchant: a CloudEvents 1.0 event in structured JSON mode. */
export function toCloudEvent(row: EventRow): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: row.id,
    source: `/dcb-gateway/merchants/${row.merchant_id}`,
    type: `${CLOUDEVENT_TYPE_PREFIX}${row.type}`,
    subject: row.subject_id,
    time: row.created_at.toISOString(),
    datacontenttype: 'application/json',
    sequence: formatSequence(row.sequence),
    data: row.data,
  };
}
