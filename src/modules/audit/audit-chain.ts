import { createHash } from 'node:crypto';
import type { AuditEventContent } from './audit-types.js';

/** The prev_hash of the first sealed event (seq 1). */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * Canonical JSON in the manner of RFC 8785 (JCS): object keys sorted by UTF-16 code units, no
 * whitespace, strings and numbers as ECMAScript serialises them. Summaries are written from JS
 * objects, so their numbers are always IEEE doubles and survive the round trip exactly.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`Cannot canonicalise a ${typeof value}.`);
    return text;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The hash that seals one event: SHA-256 over the previous event's hash (64 hex characters, so
 * the concatenation is unambiguous) followed by the canonical JSON of every content column
 * (actor_operator only when it is set).
 * `occurred_at` is the UTC text form with microseconds, exactly as the API shows it, so anyone
 * holding the listed events can recompute the chain.
 */
export function eventHash(prevHash: string, event: AuditEventContent): string {
  const content: Omit<AuditEventContent, 'actor_operator'> & { actor_operator?: string } = {
    id: event.id,
    occurred_at: event.occurred_at,
    actor_type: event.actor_type,
    actor_id: event.actor_id,
    api_key_id: event.api_key_id,
    // Only when a person acted: events from before operators existed keep their hashes.
    ...(event.actor_operator != null ? { actor_operator: event.actor_operator } : {}),
    actor_ip: event.actor_ip,
    action: event.action,
    object_type: event.object_type,
    object_id: event.object_id,
    request_id: event.request_id,
    summary: event.summary,
  };
  return createHash('sha256').update(prevHash).update(canonicalJson(content)).digest('hex');
}
