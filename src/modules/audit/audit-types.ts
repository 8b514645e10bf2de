/** The columns an event's hash covers, as read for hashing (occurred_at as UTC text with µs). */
export interface AuditEventContent {
  id: string;
  occurred_at: string;
  actor_type: string;
  actor_id: string | null;
  api_key_id: string | null;
  /** The person who acted; hashed only when set, so events without one hash as they always did. */
  actor_operator: string | null;
  actor_ip: string | null;
  action: string;
  object_type: string;
  object_id: string;
  request_id: string | null;
  summary: Record<string, unknown>;
}

/** An event with its seal (from audit_seals), all three NULL until sealed. */
export interface AuditEventRow extends AuditEventContent {
  /** int8 arrives as a string. */
  seq: string | null;
  prev_hash: string | null;
  hash: string | null;
}

/** One seal of the chain with the event it seals. */
export interface ChainLink {
  /** int8 arrives as a string. */
  seq: string;
  event_id: string;
  prev_hash: string;
  hash: string;
  /** Null when the event is gone from audit_events. */
  event: AuditEventContent | null;
}

export interface AuditEventView {
  id: string;
  seq: number | null;
  occurred_at: string;
  actor: {
    type: string;
    id: string | null;
    api_key_id: string | null;
    operator_id: string | null;
    ip: string | null;
  };
  action: string;
  object: { type: string; id: string };
  request_id: string | null;
  summary: Record<string, unknown>;
  prev_hash: string | null;
  hash: string | null;
}

export interface AuditEventFilter {
  actorId?: string;
  actorOperator?: string;
  action?: string;
  objectType?: string;
  objectId?: string;
  /** RFC 3339 bounds on occurred_at: inclusive lower, exclusive upper. */
  createdGte?: string;
  createdLt?: string;
}

export type ChainFault =
  /** A seq is missing before this row (a deleted seal). */
  | 'seq_gap'
  /** This row's prev_hash is not its predecessor's hash. */
  | 'prev_hash_mismatch'
  /** This row's content no longer hashes to its stored hash (an altered event). */
  | 'hash_mismatch'
  /** The event sealed at this seq is gone, or the head names this seq but its seal is gone. */
  | 'missing'
  /** An event neither sealed nor waiting to be (its place in the queue was removed); no seq. */
  | 'unchained'
  /** Every event checks out but the last one is not the one the chain head recorded. */
  | 'head_mismatch';

export interface ChainVerification {
  ok: boolean;
  /** Sealed events examined; verification stops at the first bad one. */
  checked: number;
  first_bad?: { seq: number | null; id: string | null; reason: ChainFault };
  /** Events not sealed yet when verification started (not part of the chain yet). */
  unsealed: number;
  /** The chain head verified against: record it elsewhere to detect a rewrite later. */
  head: { seq: number; id: string | null; hash: string };
}

export function toAuditEventView(row: AuditEventRow): AuditEventView {
  return {
    id: row.id,
    seq: row.seq === null ? null : Number(row.seq),
    occurred_at: row.occurred_at,
    actor: {
      type: row.actor_type,
      id: row.actor_id,
      api_key_id: row.api_key_id,
      operator_id: row.actor_operator,
      ip: row.actor_ip,
    },
    action: row.action,
    object: { type: row.object_type, id: row.object_id },
    request_id: row.request_id,
    summary: row.summary,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}
