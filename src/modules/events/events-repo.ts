import type { Queryable } from '../../db/pool.js';
import { newId } from '../../lib/ids.js';
import type { AttemptRow, EventRow, EventType } from './events-types.js';

export type { EventType } from './events-types.js';

export interface NewEvent {
  merchantId: string;
  type: EventType;
  /** The charge (ch_…) or refund (re_…) the event is about. */
  subjectId: string;
  /** The charge or refund JSON object, as the API shows it. */
  data: Record<string, unknown>;
}

/** The columns of a new outbox event (its delivery state starts at the table's defaults). */
export interface EventColumns {
  id: string;
  merchant_id: string;
  type: EventType;
  subject_id: string;
  data: Record<string, unknown>;
}

/** A new event's columns, for insertEvent or a statement that writes it with others. */
export function eventColumns(event: NewEvent): EventColumns {
  return {
    id: newId('evt'),
    merchant_id: event.merchantId,
    type: event.type,
    subject_id: event.subjectId,
    data: event.data,
  };
}

/**
 * Writes an event to the outbox; call it inside the transaction of the change it describes,
 * after taking the row lock of the charge (that lock is what orders one charge's events).
 * An event of a merchant without an enabled endpoint is stored `skipped` (migration 0011), so the
 * dispatcher never visits it. Returns the event id (evt_…).
 */
export async function insertEvent(db: Queryable, event: NewEvent): Promise<string> {
  const e = eventColumns(event);
  const { rowCount } = await db.query(
    `INSERT INTO events (id, merchant_id, type, subject_id, data, delivery_status, next_attempt_at)
     SELECT $1, m.id, $3, $4, $5, d.status, CASE WHEN d.status = 'pending' THEN now() END
       FROM merchants m, event_delivery_status(m.webhook_url, m.webhook_status) AS d(status)
      WHERE m.id = $2`,
    [e.id, e.merchant_id, e.type, e.subject_id, JSON.stringify(e.data)],
  );
  if (rowCount !== 1) throw new Error(`insertEvent: no merchant ${e.merchant_id}`);
  return e.id;
}

export async function findMerchantEvent(
  db: Queryable,
  merchantId: string,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<EventRow | undefined> {
  const { rows } = await db.query<EventRow>(
    `SELECT * FROM events WHERE id = $1 AND merchant_id = $2${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [id, merchantId],
  );
  return rows[0];
}

/** Newest first; fetches `limit + 1` rows so the caller can tell whether more follow. */
export async function listMerchantEvents(
  db: Queryable,
  filter: { merchantId: string; type?: EventType; limit: number; startingAfter?: string },
): Promise<EventRow[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT * FROM events
      WHERE merchant_id = $1 AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR id < $3)
      ORDER BY id DESC LIMIT $4`,
    [filter.merchantId, filter.type ?? null, filter.startingAfter ?? null, filter.limit + 1],
  );
  return rows;
}

export async function listAttempts(db: Queryable, eventId: string): Promise<AttemptRow[]> {
  const { rows } = await db.query<AttemptRow>(
    'SELECT * FROM event_delivery_attempts WHERE event_id = $1 ORDER BY id',
    [eventId],
  );
  return rows;
}

/** An event that came due, with its merchant's endpoint as it stands now. */
export interface DueEvent extends EventRow {
  webhook_url: string | null;
  webhook_status: 'enabled' | 'disabled';
  webhook_secret: string | null;
  /** Only while the rotation grace period lasts. */
  webhook_previous_secret: string | null;
  /** Database time of the claim. */
  db_now: Date;
}

/**
 * Locks up to `limit` events whose next_attempt_at has passed — pending ones, and in-flight ones
 * whose lease ran out — skipping rows another dispatcher holds. Call inside a short transaction.
 */
export async function lockDueEvents(
  db: Queryable,
  options: { limit: number; merchantIds?: readonly string[] },
): Promise<DueEvent[]> {
  const { rows } = await db.query<DueEvent>(
    `SELECT e.*, m.webhook_url, m.webhook_status, m.webhook_secret,
            CASE WHEN m.webhook_previous_secret_until > now() THEN m.webhook_previous_secret END
              AS webhook_previous_secret,
            now() AS db_now
       FROM events e JOIN merchants m ON m.id = e.merchant_id
      WHERE e.delivery_status IN ('pending', 'delivering') AND e.next_attempt_at <= now()
        AND ($2::text[] IS NULL OR e.merchant_id = ANY ($2))
      ORDER BY e.next_attempt_at
      LIMIT $1
      FOR UPDATE OF e SKIP LOCKED`,
    [options.limit, options.merchantIds ?? null],
  );
  return rows;
}

/** Marks events in flight until now() + leaseMs; only the holder of `leaseId` may record them. */
export async function leaseEvents(
  db: Queryable,
  ids: readonly string[],
  leaseId: string,
  leaseMs: number,
): Promise<void> {
  await db.query(
    `UPDATE events SET delivery_status = 'delivering', lease_id = $2,
            next_attempt_at = now() + $3::float8 * interval '1 millisecond'
      WHERE id = ANY ($1)`,
    [ids, leaseId, leaseMs],
  );
}

/** Events that came due while their merchant had no enabled endpoint are not delivered. */
export async function markEventsSkipped(db: Queryable, ids: readonly string[]): Promise<void> {
  await db.query(
    `UPDATE events SET delivery_status = 'skipped', next_attempt_at = NULL, lease_id = NULL
      WHERE id = ANY ($1)`,
    [ids],
  );
}

/** Appends one attempt to the event's history; `attempted_at` is the database time it started. */
export async function insertAttempt(
  db: Queryable,
  attempt: {
    eventId: string;
    url: string;
    httpStatus: number | null;
    latencyMs: number;
    error: string | null;
  },
): Promise<void> {
  await db.query(
    `INSERT INTO event_delivery_attempts (event_id, attempted_at, url, http_status, latency_ms, error)
     VALUES ($1, clock_timestamp() - $6::float8 * interval '1 millisecond', $2, $3, $4, $5)`,
    [
      attempt.eventId,
      attempt.url,
      attempt.httpStatus,
      attempt.latencyMs,
      attempt.error,
      attempt.latencyMs,
    ],
  );
}

export type AttemptOutcome =
  { status: 'delivered' } | { status: 'failed' } | { status: 'pending'; retryInMs: number };

/**
 * Records the outcome of an attempt on the event. The attempt always counts; the event's state
 * moves only while `leaseId` still holds it (a dispatcher that stalled past its lease has been
 * overtaken by another). Returns whether the lease was still held.
 */
export async function recordAttemptOutcome(
  db: Queryable,
  eventId: string,
  leaseId: string,
  result: { httpStatus: number | null; error: string | null; latencyMs: number },
  outcome: AttemptOutcome,
): Promise<boolean> {
  const { rows } = await db.query<{ lease_id: string | null }>(
    'SELECT lease_id FROM events WHERE id = $1 FOR UPDATE',
    [eventId],
  );
  if (rows[0]?.lease_id !== leaseId) {
    await db.query('UPDATE events SET attempts = attempts + 1 WHERE id = $1', [eventId]);
    return false;
  }
  await db.query(
    `UPDATE events SET
        attempts = attempts + 1,
        last_attempt_at = clock_timestamp() - $2::float8 * interval '1 millisecond',
        last_status = $3,
        last_error = $4,
        delivery_status = $5,
        lease_id = NULL,
        next_attempt_at = CASE WHEN $5 = 'pending' THEN now() + $6::float8 * interval '1 millisecond' END,
        delivered_at = CASE WHEN $5 = 'delivered' THEN now() ELSE delivered_at END
      WHERE id = $1`,
    [
      eventId,
      result.latencyMs,
      result.httpStatus,
      result.error,
      outcome.status,
      outcome.status === 'pending' ? outcome.retryInMs : null,
    ],
  );
  return true;
}

/** Makes the event due now and restarts its retry schedule (a manual redelivery). */
export async function scheduleRedelivery(db: Queryable, id: string): Promise<EventRow> {
  const { rows } = await db.query<EventRow>(
    `UPDATE events SET delivery_status = 'pending', next_attempt_at = now(), lease_id = NULL,
            retry_base = attempts, retry_started_at = now()
      WHERE id = $1 RETURNING *`,
    [id],
  );
  return rows[0]!;
}
