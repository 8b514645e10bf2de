import type { Role } from '../../http/context.js';

export type OperatorStatus = 'active' | 'suspended';

/** The operator columns this module reads; sign-in secrets (password, TOTP) are never selected. */
export interface OperatorRow {
  id: string;
  email: string;
  name: string;
  role: Role;
  owner_id: string | null;
  status: OperatorStatus;
  bootstrap: boolean;
  setup_expires_at: Date | null;
  password_set: boolean;
  totp_enabled: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface OperatorView {
  id: string;
  object: 'operator';
  email: string;
  name: string;
  role: Role;
  owner_id: string | null;
  status: OperatorStatus;
  /** Made for a key that existed before operators did, or by the admin CLI's create-admin-key. */
  bootstrap: boolean;
  /** Whether the operator has set a password, and when an unused set-up link expires. */
  sign_in: { password_set: boolean; totp_enabled: boolean; setup_expires_at: string | null };
  created_at: string;
  updated_at: string;
}

/** The answer to a creation: the one time the set-up token is ever shown. */
export interface CreatedOperator extends OperatorView {
  setup: { token: string; url: string; expires_at: string };
}

export interface CreateOperatorInput {
  email: string;
  name: string;
  role: Role;
  owner_id?: string;
}

export interface OperatorFilter {
  role?: Role;
  status?: OperatorStatus;
  ownerId?: string;
  limit: number;
  startingAfter?: string;
}

export function toOperatorView(row: OperatorRow): OperatorView {
  return {
    id: row.id,
    object: 'operator',
    email: row.email,
    name: row.name,
    role: row.role,
    owner_id: row.owner_id,
    status: row.status,
    bootstrap: row.bootstrap,
    sign_in: {
      password_set: row.password_set,
      totp_enabled: row.totp_enabled,
      setup_expires_at: row.setup_expires_at ? row.setup_expires_at.toISOString() : null,
    },
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}
