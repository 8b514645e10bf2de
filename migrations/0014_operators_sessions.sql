-- Up Migration

-- People behind keys (SPEC §9.2). An operator is a person with one of the four roles; carrier
-- and merchant staff belong to their tenant. Four-eyes compares operators, not keys.
CREATE TABLE operators (
  id                 text PRIMARY KEY,
  -- Kept as given; uniqueness and sign-in compare lower(email).
  email              text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  role               text NOT NULL CHECK (role IN ('merchant', 'carrier', 'admin', 'auditor')),
  owner_id           text,
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  -- A PHC-style string (scheme, parameters, salt, hash); NULL until the set-up link is used.
  password_hash      text,
  -- The TOTP shared secret (base32) and when its first code was verified; a secret without
  -- totp_enabled_at is an enrolment in progress.
  totp_secret        text,
  totp_enabled_at    timestamptz,
  -- SHA-256 of the one-time set-up token; the token itself is only ever in the link.
  setup_token_hash   bytea UNIQUE,
  setup_expires_at   timestamptz,
  -- Made by migration 0014 for admin keys that existed before operators did.
  bootstrap          boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK ((role IN ('merchant', 'carrier')) = (owner_id IS NOT NULL)),
  CHECK ((setup_token_hash IS NULL) = (setup_expires_at IS NULL))
);
CREATE UNIQUE INDEX operators_email_key ON operators (lower(email));
CREATE INDEX operators_owner_idx ON operators (owner_id) WHERE owner_id IS NOT NULL;

-- A key is personal (operator_id set) or a tenant's machine key (operator_id NULL).
ALTER TABLE api_keys ADD COLUMN operator_id text REFERENCES operators (id);
CREATE INDEX api_keys_operator_idx ON api_keys (operator_id) WHERE operator_id IS NOT NULL;

-- The person who acted, when one did. NULL for machine keys and workers.
ALTER TABLE audit_events ADD COLUMN actor_operator text;

-- Console sessions. The cookie carries a random token; only its hash is stored, as for keys.
CREATE TABLE operator_sessions (
  id              text PRIMARY KEY,
  token_hash      bytea NOT NULL UNIQUE,
  operator_id     text NOT NULL REFERENCES operators (id),
  -- 'second_factor': the password was right and a TOTP code is awaited; 'active': signed in.
  stage           text NOT NULL CHECK (stage IN ('second_factor', 'active')),
  csrf_token_hash bytea NOT NULL,
  ip              text,
  user_agent      text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_seen_at    timestamptz NOT NULL DEFAULT now(),
  -- The absolute end (12 h after sign-in); the idle end is last_seen_at + 30 min.
  expires_at      timestamptz NOT NULL,
  ended_at        timestamptz,
  ended_reason    text CHECK (ended_reason IN ('signed_out', 'idle', 'expired', 'suspended'))
);
CREATE INDEX operator_sessions_operator_idx ON operator_sessions (operator_id)
  WHERE ended_at IS NULL;

-- Existing admin and auditor keys keep working: each is given to a bootstrap operator. Keys
-- minted by another admin key belong to the same person as the key that minted them (a key is
-- not a person, and two keys of one admin must not pass four-eyes); a root key, made by the CLI
-- or a worker, is a person of its own.
WITH RECURSIVE lineage AS (
  SELECT k.id, k.id AS root_id, k.role
  FROM api_keys k
  WHERE k.role IN ('admin', 'auditor')
    AND (k.created_by IS NULL
         OR NOT EXISTS (SELECT 1 FROM api_keys p
                        WHERE p.id = k.created_by AND p.role IN ('admin', 'auditor')))
  UNION ALL
  SELECT k.id, l.root_id, k.role
  FROM api_keys k
  JOIN lineage l ON k.created_by = l.id
  WHERE k.role IN ('admin', 'auditor')
),
roots AS (
  SELECT k.id AS root_id, k.role, 'op_' || substr(k.id, 5) AS operator_id
  FROM api_keys k
  WHERE k.id IN (SELECT root_id FROM lineage)
),
made AS (
  INSERT INTO operators (id, email, name, role, bootstrap)
  SELECT operator_id, operator_id || '@bootstrap.invalid',
         'Bootstrap ' || role || ' (key ' || root_id || ')', role, true
  FROM roots
  RETURNING id
)
UPDATE api_keys k
SET operator_id = r.operator_id
FROM lineage l
JOIN roots r ON r.root_id = l.root_id
WHERE k.id = l.id
  AND EXISTS (SELECT 1 FROM made m WHERE m.id = r.operator_id);

-- Down Migration
