import type { Role } from '../../http/context.js';

export type SessionStage = 'second_factor' | 'active';
export type SessionEndReason = 'signed_out' | 'idle' | 'expired' | 'suspended' | 'password_set';

/** What sign-in needs of an operator. */
export interface SignInOperatorRow {
  id: string;
  email: string;
  name: string;
  role: Role;
  owner_id: string | null;
  status: 'active' | 'suspended';
  password_hash: string | null;
  totp_enabled_at: Date | null;
}

/** A session with its operator and where it stands against the database clock. */
export interface SessionRow {
  id: string;
  operator_id: string;
  stage: SessionStage;
  csrf_token_hash: Buffer;
  expires_at: Date;
  idle_expires_at: Date;
  ended_reason: SessionEndReason | null;
  /** Why it is over now if it has not been ended yet; null while it is live. */
  lapsed: 'idle' | 'expired' | null;
  needs_touch: boolean;
  email: string;
  name: string;
  role: Role;
  owner_id: string | null;
  status: 'active' | 'suspended';
  totp_secret: string | null;
  totp_enabled_at: Date | null;
  totp_last_step: string | null;
}

/** GET /v1/session and the answers of sign-in and second factor. */
export interface SessionView {
  object: 'session';
  id: string;
  stage: SessionStage;
  operator_id: string;
  email: string;
  name: string;
  role: Role;
  owner_id: string | null;
  /** Whether the operator has a confirmed TOTP authenticator. */
  totp_enabled: boolean;
  /** Whether the role must have one (admin, auditor): without it the session cannot become active. */
  totp_required: boolean;
  /** The absolute end; the session ends earlier after idle_timeout_seconds without a request. */
  expires_at: string;
  idle_expires_at: string;
  /** Send back as X-CSRF-Token on every POST, PUT, PATCH and DELETE made with this session. */
  csrf_token: string;
}

/** Roles that sign in only with a second factor (SPEC §9.2). */
export const TOTP_REQUIRED_ROLES: readonly Role[] = ['admin', 'auditor'];
