-- Up Migration

-- Console sign-in (SPEC §9.2). The time step of the last TOTP code accepted for an operator: a
-- code is accepted only for a later step, so one seen over a shoulder or replayed from a proxy
-- log is refused within its window (RFC 6238 §5.2). NULL until a code has been accepted.
ALTER TABLE operators ADD COLUMN totp_last_step bigint;

-- A new password (a fresh set-up link) ends the sessions signed in with the old one.
ALTER TABLE operator_sessions DROP CONSTRAINT operator_sessions_ended_reason_check;
ALTER TABLE operator_sessions ADD CONSTRAINT operator_sessions_ended_reason_check
  CHECK (ended_reason IN ('signed_out', 'idle', 'expired', 'suspended', 'password_set'));

-- Down Migration
