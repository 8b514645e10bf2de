-- Up Migration

-- During a secret rotation the previous secret keeps signing (alongside the new one) until
-- webhook_previous_secret_until.
ALTER TABLE merchants
  ADD COLUMN webhook_previous_secret        text,
  ADD COLUMN webhook_previous_secret_until  timestamptz,
  ADD CONSTRAINT merchants_webhook_previous_secret_check
    CHECK ((webhook_previous_secret IS NULL) = (webhook_previous_secret_until IS NULL));

-- The transactional outbox: one row per merchant-visible event, written in the transaction of the
-- change it describes, and its delivery state.
--
-- Ordering: `sequence` comes from one global identity. Every change to a charge (and each refund
-- of it) holds the charge's row lock when it writes its event, so the events of one charge get
-- increasing sequences in commit order. Across unrelated charges the numbers say nothing about
-- commit order, and they have gaps.
CREATE TABLE events (
  id               text PRIMARY KEY,
  sequence         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  merchant_id      text NOT NULL REFERENCES merchants (id),
  type             text NOT NULL CHECK (type IN (
                     'charge.succeeded', 'charge.reserved', 'charge.pending_validation',
                     'charge.denied', 'charge.cancelled', 'refund.succeeded')),
  subject_id       text NOT NULL,
  data             jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- pending: waiting for next_attempt_at; delivering: claimed by a dispatcher until
  -- next_attempt_at (the lease); delivered; failed: retries exhausted or the endpoint is gone;
  -- skipped: the merchant had no enabled endpoint when the event came due.
  delivery_status  text NOT NULL DEFAULT 'pending'
                     CHECK (delivery_status IN ('pending', 'delivering', 'delivered', 'failed', 'skipped')),
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- The retry schedule restarts on a manual redelivery: it counts attempts after retry_base and
  -- measures the retry window from retry_started_at.
  retry_base       integer NOT NULL DEFAULT 0 CHECK (retry_base >= 0),
  retry_started_at timestamptz NOT NULL DEFAULT now(),
  next_attempt_at  timestamptz,
  lease_id         text,
  last_attempt_at  timestamptz,
  last_status      integer,
  last_error       text,
  delivered_at     timestamptz,
  CHECK ((delivery_status IN ('pending', 'delivering')) = (next_attempt_at IS NOT NULL)),
  CHECK ((delivery_status = 'delivering') = (lease_id IS NOT NULL))
);
CREATE INDEX events_due_idx ON events (next_attempt_at)
  WHERE delivery_status IN ('pending', 'delivering');
CREATE INDEX events_merchant_idx ON events (merchant_id, id DESC);
CREATE INDEX events_merchant_type_idx ON events (merchant_id, type, id DESC);
CREATE INDEX events_subject_idx ON events (subject_id, sequence);

-- One row per delivery attempt: HTTP status (NULL when no answer came), latency, and the error.
CREATE TABLE event_delivery_attempts (
  id            bigserial PRIMARY KEY,
  event_id      text NOT NULL REFERENCES events (id),
  attempted_at  timestamptz NOT NULL,
  url           text NOT NULL,
  http_status   integer,
  latency_ms    integer NOT NULL CHECK (latency_ms >= 0),
  error         text
);
CREATE INDEX event_delivery_attempts_event_idx ON event_delivery_attempts (event_id, id);

-- Down Migration
DROP TABLE event_delivery_attempts;
DROP TABLE events;
ALTER TABLE merchants
  DROP CONSTRAINT merchants_webhook_previous_secret_check,
  DROP COLUMN webhook_previous_secret_until,
  DROP COLUMN webhook_previous_secret;
