-- Up Migration

CREATE TABLE carriers (
  id                 text PRIMARY KEY,
  code               text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_-]{1,31}$'),
  name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  timezone           text NOT NULL,
  revenue_share_bps  integer NOT NULL CHECK (revenue_share_bps BETWEEN 0 AND 10000),
  status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  -- Spend limits in minor units of the carrier's currency; NULL means no cap.
  prepaid_per_transaction_max   bigint CHECK (prepaid_per_transaction_max > 0),
  prepaid_daily_max             bigint CHECK (prepaid_daily_max > 0),
  prepaid_monthly_max           bigint CHECK (prepaid_monthly_max > 0),
  postpaid_per_transaction_max  bigint CHECK (postpaid_per_transaction_max > 0),
  postpaid_daily_max            bigint CHECK (postpaid_daily_max > 0),
  postpaid_monthly_max          bigint CHECK (postpaid_monthly_max > 0),
  otp_threshold      bigint CHECK (otp_threshold > 0),
  sms_url            text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchants (
  id                       text PRIMARY KEY,
  name                     text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  status                   text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  fee_bps                  integer NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
  per_transaction_max      bigint CHECK (per_transaction_max > 0),
  per_transaction_max_currency text CHECK (per_transaction_max_currency ~ '^[A-Z]{3}$'),
  consent                  text NOT NULL DEFAULT 'carrier_default'
                             CHECK (consent IN ('carrier_default', 'always_otp')),
  reservation_ttl_seconds  integer CHECK (reservation_ttl_seconds BETWEEN 60 AND 2592000),
  webhook_url              text,
  webhook_secret           text,
  webhook_status           text NOT NULL DEFAULT 'enabled' CHECK (webhook_status IN ('enabled', 'disabled')),
  created_at               timestamptz NOT NULL DEFAULT now(),
  updated_at               timestamptz NOT NULL DEFAULT now(),
  CHECK ((per_transaction_max IS NULL) = (per_transaction_max_currency IS NULL))
);

CREATE TABLE api_keys (
  id          text PRIMARY KEY,
  -- SHA-256 of the whole key; the key itself is never stored.
  key_hash    bytea NOT NULL UNIQUE,
  key_prefix  text NOT NULL,
  role        text NOT NULL CHECK (role IN ('merchant', 'carrier', 'admin', 'auditor')),
  owner_id    text,
  description text,
  created_by  text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  CHECK ((role IN ('merchant', 'carrier')) = (owner_id IS NOT NULL))
);
CREATE INDEX api_keys_owner_idx ON api_keys (owner_id);

-- Written in the same transaction as each change; a sealer later assigns seq and the hash chain.
CREATE TABLE audit_events (
  id           text PRIMARY KEY,
  occurred_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor_type   text NOT NULL,
  actor_id     text,
  api_key_id   text,
  actor_ip     text,
  action       text NOT NULL,
  object_type  text NOT NULL,
  object_id    text NOT NULL,
  request_id   text,
  summary      jsonb NOT NULL DEFAULT '{}'::jsonb,
  seq          bigint UNIQUE,
  prev_hash    text,
  hash         text
);
CREATE INDEX audit_events_unsealed_idx ON audit_events (occurred_at, id) WHERE seq IS NULL;
CREATE INDEX audit_events_object_idx ON audit_events (object_type, object_id);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at);
CREATE INDEX audit_events_action_idx ON audit_events (action, occurred_at);
CREATE INDEX audit_events_time_idx ON audit_events (occurred_at, id);

-- Down Migration
DROP TABLE audit_events;
DROP TABLE api_keys;
DROP TABLE merchants;
DROP TABLE carriers;
