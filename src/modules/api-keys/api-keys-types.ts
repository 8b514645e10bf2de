import type { Role } from '../../http/context.js';

export interface ApiKeyRow {
  id: string;
  key_prefix: string;
  role: Role;
  owner_id: string | null;
  /** The person a personal key belongs to; null for a machine key (a service account's). */
  operator_id: string | null;
  description: string | null;
  created_at: Date;
  revoked_at: Date | null;
}

export interface ApiKeyView {
  id: string;
  role: Role;
  owner_id?: string;
  operator_id: string | null;
  description?: string;
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

export function toApiKeyView(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    role: row.role,
    ...(row.owner_id !== null ? { owner_id: row.owner_id } : {}),
    operator_id: row.operator_id,
    ...(row.description !== null ? { description: row.description } : {}),
    prefix: row.key_prefix,
    created_at: row.created_at.toISOString(),
    revoked_at: row.revoked_at ? row.revoked_at.toISOString() : null,
  };
}
