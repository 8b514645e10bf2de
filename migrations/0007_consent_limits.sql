-- Up Migration

-- The one-time code of a charge awaiting the subscriber's consent (status pending_validation).
-- Only a keyed hash of the code is kept: HMAC-SHA256(OTP_HASH_SECRET, charge id ":" code). The
-- row is deleted when the charge leaves pending_validation; the audit trail keeps what happened.
CREATE TABLE charge_otps (
  charge_id   text PRIMARY KEY REFERENCES charges (id),
  code_hash   bytea NOT NULL CHECK (length(code_hash) = 32),
  attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  expires_at  timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
-- The expiry sweeper walks this index: only charges awaiting consent have a row.
CREATE INDEX charge_otps_expiry_idx ON charge_otps (expires_at);

-- SMS to subscribers, written in the transaction that creates the code and delivered afterwards by
-- a worker, so no carrier round trip ever runs inside a money transaction.
--
-- The text holds a one-time code. Outside sandbox it is erased (set to NULL) as soon as the row
-- is delivered, failed or expired, so a plaintext code lives at most as long as the code itself
-- (5 minutes). In sandbox the delivered text is kept: it is what the sandbox SMS inbox shows.
CREATE TABLE sms_outbox (
  id               text PRIMARY KEY,
  charge_id        text REFERENCES charges (id),
  carrier_id       text NOT NULL REFERENCES carriers (id),
  msisdn           text NOT NULL,
  message          text,
  -- pending: waiting for next_attempt_at; delivering: claimed by a worker until next_attempt_at
  -- (the lease); delivered; failed: the carrier refused it or retries ran out; expired: not
  -- delivered before expires_at, when the message no longer means anything.
  status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivering', 'delivered', 'failed', 'expired')),
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at  timestamptz DEFAULT now(),
  lease_id         text,
  last_status      integer,
  last_error       text,
  expires_at       timestamptz NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz,
  CHECK ((status IN ('pending', 'delivering')) = (next_attempt_at IS NOT NULL)),
  CHECK ((status = 'delivering') = (lease_id IS NOT NULL))
);
CREATE INDEX sms_outbox_due_idx ON sms_outbox (next_attempt_at) WHERE status IN ('pending', 'delivering');
CREATE INDEX sms_outbox_msisdn_idx ON sms_outbox (msisdn, id DESC);

-- Down Migration
DROP TABLE sms_outbox;
DROP TABLE charge_otps;
