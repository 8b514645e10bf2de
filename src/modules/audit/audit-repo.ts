import type { Queryable } from '../../db/pool.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';

export interface AuditRecord {
  action: string;
  objectType: string;
  objectId: string;
  /** What changed: never secrets, codes or full MSISDNs. */
  summary?: Record<string, unknown>;
}

/** Appends an audit event; call it inside the transaction of the change it describes. */
export async function insertAuditEvent(
  db: Queryable,
  actor: Actor,
  record: AuditRecord,
): Promise<void> {
  await db.query(
    `INSERT INTO audit_events (id, actor_type, actor_id, api_key_id, actor_ip, action, object_type, object_id, request_id, summary)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      newId('evt'),
      actor.type,
      actor.id,
      actor.apiKeyId,
      actor.ip,
      record.action,
      record.objectType,
      record.objectId,
      actor.requestId,
      JSON.stringify(record.summary ?? {}),
    ],
  );
}
