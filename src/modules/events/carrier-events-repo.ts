import type { Queryable } from '../../db/pool.js';
import { newId } from '../../lib/ids.js';

/**
 * What carriers are told. Carriers have no webhook endpoint: they read their events with
 * `GET /v1/carrier/events`, and each event has an audit event beside it.
 */
export const CARRIER_EVENT_TYPES = [
  'port.requested',
  'port.accepted',
  'port.rejected',
  'port.cancelled',
  'port.completed',
  'subscriber.otp_locked',
] as const;
export type CarrierEventType = (typeof CARRIER_EVENT_TYPES)[number];

export interface CarrierEventRow {
  id: string;
  carrier_id: string;
  type: CarrierEventType;
  msisdn: string;
  subject_id: string | null;
  data: Record<string, unknown>;
  created_at: Date;
}

export interface CarrierEventView {
  id: string;
  object: 'carrier_event';
  type: CarrierEventType;
  /** The number the event is about: the carrier's own subscriber, or one it ports in or out. */
  msisdn: string;
  /** The object the event is about when it is not the number itself (a port's id). */
  subject_id: string | null;
  data: Record<string, unknown>;
  created_at: string;
}

export function toCarrierEventView(row: CarrierEventRow): CarrierEventView {
  return {
    id: row.id,
    object: 'carrier_event',
    type: row.type,
    msisdn: row.msisdn,
    subject_id: row.subject_id,
    data: row.data,
    created_at: row.created_at.toISOString(),
  };
}

/** Writes a carrier event in the transaction of the change it announces; returns its id. */
export async function insertCarrierEvent(
  db: Queryable,
  event: {
    carrierId: string;
    type: CarrierEventType;
    msisdn: string;
    subjectId?: string;
    data: object;
  },
): Promise<string> {
  const id = newId('evt');
  await db.query(
    `INSERT INTO carrier_events (id, carrier_id, type, msisdn, subject_id, data)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [
      id,
      event.carrierId,
      event.type,
      event.msisdn,
      event.subjectId ?? null,
      JSON.stringify(event.data),
    ],
  );
  return id;
}

/** The carrier's events, newest first; `limit + 1` rows so the caller can tell whether more follow. */
export async function listCarrierEvents(
  db: Queryable,
  f: { carrierId: string; type?: CarrierEventType; limit: number; startingAfter?: string },
): Promise<CarrierEventRow[]> {
  const { rows } = await db.query<CarrierEventRow>(
    `SELECT * FROM carrier_events
      WHERE carrier_id = $1 AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR id < $3)
      ORDER BY id DESC LIMIT $4`,
    [f.carrierId, f.type ?? null, f.startingAfter ?? null, f.limit + 1],
  );
  return rows;
}
