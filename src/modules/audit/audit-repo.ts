import type { Queryable } from '../../db/pool.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import type {
  AuditEventContent,
  AuditEventFilter,
  AuditEventRow,
  ChainLink,
} from './audit-types.js';

export interface AuditRecord {
  action: string;
  objectType: string;
  objectId: string;
  /** What changed: never secrets, codes or full MSISDNs. */
  summary?: Record<string, unknown>;
}

/** The columns of a new audit event (its time and seal are the database's to set). */
export interface AuditEventColumns extends Omit<AuditEventContent, 'occurred_at' | 'actor_type'> {
  actor_type: Actor['type'];
}

/** A new audit event's columns, for insertAuditEvent or a statement that writes it with others. */
export function auditEventColumns(actor: Actor, record: AuditRecord): AuditEventColumns {
  return {
    id: newId('evt'),
    actor_type: actor.type,
    actor_id: actor.id,
    api_key_id: actor.apiKeyId,
    actor_ip: actor.ip,
    action: record.action,
    object_type: record.objectType,
    object_id: record.objectId,
    request_id: actor.requestId,
    summary: record.summary ?? {},
  };
}

/** Appends an audit event; call it inside the transaction of the change it describes. */
export async function insertAuditEvent(
  db: Queryable,
  actor: Actor,
  record: AuditRecord,
): Promise<void> {
  const a = auditEventColumns(actor, record);
  await db.query(
    `INSERT INTO audit_events (id, actor_type, actor_id, api_key_id, actor_ip, action, object_type, object_id, request_id, summary, actor_operator)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [
      a.id,
      a.actor_type,
      a.actor_id,
      a.api_key_id,
      a.actor_ip,
      a.action,
      a.object_type,
      a.object_id,
      a.request_id,
      JSON.stringify(a.summary),
      actor.operatorId ?? null,
    ],
  );
}

/**
 * occurred_at as UTC text with microseconds: a JS Date would drop the microseconds, and the
 * hash must cover exactly what is stored.
 */
const OCCURRED_AT_TEXT = `to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** The columns an event's hash covers, from audit_events AS e. */
const CONTENT_COLUMNS = `e.id, ${OCCURRED_AT_TEXT} AS occurred_at, e.actor_type, e.actor_id,
  e.api_key_id, e.actor_ip, e.action, e.object_type, e.object_id, e.request_id, e.summary`;

/** An event with its seal, if it has one yet: audit_events AS e LEFT JOIN audit_seals AS s. */
const EVENT_COLUMNS = `${CONTENT_COLUMNS}, s.seq, s.prev_hash, s.hash`;

/** Arbitrary constant (distinct from the migration lock): held by the one sealer at work. */
const SEALER_LOCK_ID = 4_815_162_343;

export interface ChainHeadRow {
  /** int8 as a string; 0 before anything is sealed. */
  seq: string;
  event_id: string | null;
  hash: string;
}

export interface EventSeal {
  id: string;
  seq: number;
  prevHash: string;
  hash: string;
}

/** Takes the sealer's transaction-level lock; false when another sealer holds it. */
export async function tryLockSealer(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_xact_lock($1) AS locked',
    [SEALER_LOCK_ID],
  );
  return rows[0]?.locked === true;
}

export async function readChainHead(db: Queryable): Promise<ChainHeadRow> {
  const { rows } = await db.query<ChainHeadRow>(
    'SELECT seq, event_id, hash FROM audit_chain_head WHERE singleton',
  );
  if (!rows[0]) throw new Error('audit_chain_head has no row: migration 0005 did not run.');
  return rows[0];
}

/** The chain head and the count of unsealed events, read in one snapshot. */
export async function readChainState(db: Queryable): Promise<ChainHeadRow & { unsealed: number }> {
  const { rows } = await db.query<ChainHeadRow & { unsealed: string }>(
    `SELECT seq, event_id, hash,
            (SELECT count(*) FROM audit_unsealed) AS unsealed
       FROM audit_chain_head WHERE singleton`,
  );
  const row = rows[0];
  if (!row) throw new Error('audit_chain_head has no row: migration 0005 did not run.');
  return { ...row, unsealed: Number(row.unsealed) };
}

export async function advanceChainHead(
  db: Queryable,
  head: { seq: number; eventId: string; hash: string },
): Promise<void> {
  await db.query(
    'UPDATE audit_chain_head SET seq = $1, event_id = $2, hash = $3, sealed_at = now() WHERE singleton',
    [head.seq, head.eventId, head.hash],
  );
}

/**
 * Takes the oldest queued events off the queue and returns them in the deterministic order the
 * chain takes them. Call it under the sealer's lock, in the transaction that inserts their seals:
 * a rollback puts them back. A queued event that is gone from audit_events (only possible with
 * its guard switched off) leaves the queue and is not returned.
 *
 * The ids reach audit_events as an array, so the lookup is an index scan of its key whatever the
 * queue's statistics say: joined instead, a queue full of dead rows can be planned as a hash join
 * over every event ever written.
 */
export async function takeUnsealedEvents(
  db: Queryable,
  limit: number,
): Promise<AuditEventContent[]> {
  const { rows } = await db.query<AuditEventContent>(
    `WITH batch AS (
       DELETE FROM audit_unsealed
        WHERE (occurred_at, event_id) IN (SELECT occurred_at, event_id FROM audit_unsealed
                                           ORDER BY occurred_at, event_id LIMIT $1)
       RETURNING event_id
     )
     SELECT ${CONTENT_COLUMNS} FROM audit_events AS e
      WHERE e.id = ANY (ARRAY(SELECT event_id FROM batch))
      ORDER BY e.occurred_at, e.id`,
    [limit],
  );
  return rows;
}

/** Appends seals to the chain; the caller advances the head to the last one. */
export async function insertSeals(db: Queryable, seals: EventSeal[]): Promise<void> {
  await db.query(
    `INSERT INTO audit_seals (seq, event_id, prev_hash, hash)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])`,
    [
      seals.map((s) => s.seq),
      seals.map((s) => s.id),
      seals.map((s) => s.prevHash),
      seals.map((s) => s.hash),
    ],
  );
}

/**
 * Seals with afterSeq < seq <= uptoSeq in chain order, each with the event it seals: one page of
 * a verification.
 */
export async function listChainPage(
  db: Queryable,
  afterSeq: number,
  uptoSeq: number,
  limit: number,
): Promise<ChainLink[]> {
  const { rows } = await db.query<
    Omit<ChainLink, 'event'> & Omit<AuditEventContent, 'id'> & { id: string | null }
  >(
    `SELECT s.seq, s.event_id, s.prev_hash, s.hash, ${CONTENT_COLUMNS}
       FROM audit_seals AS s LEFT JOIN audit_events AS e ON e.id = s.event_id
      WHERE s.seq > $1 AND s.seq <= $2 ORDER BY s.seq LIMIT $3`,
    [afterSeq, uptoSeq, limit],
  );
  return rows.map(({ seq, event_id, prev_hash, hash, id, ...content }) => ({
    seq,
    event_id,
    prev_hash,
    hash,
    event: id === null ? null : { ...content, id },
  }));
}

/**
 * The oldest event that is neither sealed nor waiting in the queue, if any: one whose queue entry
 * was removed by hand, which the chain would otherwise never mention. One statement, so it sees
 * each event on one side of the sealer's move from the queue to the seals.
 */
export async function findUnchainedEvent(db: Queryable): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT e.id FROM audit_events AS e
      WHERE NOT EXISTS (SELECT 1 FROM audit_seals AS s WHERE s.event_id = e.id)
        AND NOT EXISTS (SELECT 1 FROM audit_unsealed AS u
                         WHERE u.occurred_at = e.occurred_at AND u.event_id = e.id)
      ORDER BY e.occurred_at, e.id LIMIT 1`,
  );
  return rows[0]?.id;
}

/** Where an event sits in the newest-first order: the keyset of a list cursor. */
export async function findEventPosition(
  db: Queryable,
  id: string,
): Promise<{ id: string; occurred_at: string } | undefined> {
  const { rows } = await db.query<{ id: string; occurred_at: string }>(
    `SELECT e.id, ${OCCURRED_AT_TEXT} AS occurred_at FROM audit_events AS e WHERE e.id = $1`,
    [id],
  );
  return rows[0];
}

/** Newest first by (occurred_at, id); fetches limit + 1 rows so the caller can tell has_more. */
export async function listAuditEvents(
  db: Queryable,
  filter: AuditEventFilter,
  page: { limit: number; after?: { id: string; occurred_at: string } },
): Promise<AuditEventRow[]> {
  const where: string[] = [];
  const values: unknown[] = [];
  const bind = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  if (filter.actorId !== undefined) where.push(`e.actor_id = ${bind(filter.actorId)}`);
  if (filter.action !== undefined) where.push(`e.action = ${bind(filter.action)}`);
  if (filter.objectType !== undefined) where.push(`e.object_type = ${bind(filter.objectType)}`);
  if (filter.objectId !== undefined) where.push(`e.object_id = ${bind(filter.objectId)}`);
  if (filter.createdGte !== undefined)
    where.push(`e.occurred_at >= ${bind(filter.createdGte)}::timestamptz`);
  if (filter.createdLt !== undefined)
    where.push(`e.occurred_at < ${bind(filter.createdLt)}::timestamptz`);
  if (page.after !== undefined) {
    where.push(
      `(e.occurred_at, e.id) < (${bind(page.after.occurred_at)}::timestamptz, ${bind(page.after.id)})`,
    );
  }
  const { rows } = await db.query<AuditEventRow>(
    `SELECT ${EVENT_COLUMNS}
       FROM audit_events AS e LEFT JOIN audit_seals AS s ON s.event_id = e.id
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY e.occurred_at DESC, e.id DESC LIMIT ${bind(page.limit + 1)}`,
    values,
  );
  return rows;
}
