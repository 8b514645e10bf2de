-- Up Migration

-- One carrier per number, and number porting (SPEC §9.1).

-- A subscriber record that a port moved to another carrier stays as read-only history: its
-- charges, refunds and ledger account keep pointing at it.
ALTER TABLE subscribers DROP CONSTRAINT subscribers_status_check;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_status_check
  CHECK (status IN ('active', 'suspended', 'barred', 'ported_out'));

-- Numbers held by more than one carrier before this rule: the earliest record keeps the number
-- as it is; the later ones become ported_out. Nothing is deleted and no money moves: their
-- balances, holds, charges and refunds stay where they are (open reservations still capture,
-- cancel or expire as before; refunds still reverse their legs), and each change is audited.
DO $$
DECLARE
  v_marked integer;
  v_numbers integer;
BEGIN
  WITH ranked AS (
    SELECT id, msisdn,
           row_number() OVER (PARTITION BY msisdn ORDER BY created_at, id) AS rank,
           first_value(id) OVER (PARTITION BY msisdn ORDER BY created_at, id) AS kept_id
      FROM subscribers),
  marked AS (
    UPDATE subscribers s SET status = 'ported_out', updated_at = now()
      FROM ranked r
     WHERE r.id = s.id AND r.rank > 1
    RETURNING s.id, s.carrier_id, s.msisdn, r.kept_id, (SELECT status FROM subscribers WHERE id = s.id) AS previous_status)
  INSERT INTO audit_events (id, actor_type, actor_id, action, object_type, object_id, summary)
  SELECT 'evt_0013' || substr(md5(m.id), 1, 22), 'system', 'migration-0013',
         'subscriber.ported_out', 'subscriber', m.id,
         jsonb_build_object('msisdn', left(m.msisdn, 5) || '****' || right(m.msisdn, 3),
                            'carrier_id', m.carrier_id, 'previous_status', m.previous_status,
                            'reason', 'duplicate_holder', 'kept_subscriber_id', m.kept_id)
    FROM marked m;
  GET DIAGNOSTICS v_marked = ROW_COUNT;
  IF v_marked > 0 THEN
    SELECT count(DISTINCT msisdn) INTO v_numbers
      FROM subscribers WHERE status = 'ported_out';
    RAISE NOTICE 'one holder per number: % later duplicate subscriber record(s) of % number(s) marked ported_out (earliest record kept; balances and history untouched; audit action subscriber.ported_out)',
      v_marked, v_numbers;
  END IF;
END $$;

-- Among records that are not ported_out, a number has one holder across all carriers. A carrier
-- may hold a number again after porting it away (a new record), so (carrier, msisdn) is no
-- longer unique by itself.
CREATE UNIQUE INDEX subscribers_msisdn_holder_idx ON subscribers (msisdn)
  WHERE status <> 'ported_out';
ALTER TABLE subscribers DROP CONSTRAINT subscribers_carrier_id_msisdn_key;
CREATE INDEX subscribers_carrier_msisdn_idx ON subscribers (carrier_id, msisdn, created_at);

-- A prepaid balance handed back to the losing carrier at a port's completion.
ALTER TABLE journal_transactions DROP CONSTRAINT journal_transactions_kind_check;
ALTER TABLE journal_transactions ADD CONSTRAINT journal_transactions_kind_check
  CHECK (kind IN ('topup', 'capture', 'refund', 'adjustment', 'settlement', 'port_out'));

-- A request to move a number from the carrier holding it (losing) to another (gaining).
--   pending ─accept─► accepted ─complete (admin, or the worker once effective_at passed)─► completed
--   pending ─reject─► rejected;  pending | accepted ─cancel (admin)─► cancelled
--   an admin may also complete a pending port.
CREATE TABLE ports (
  id                     text PRIMARY KEY,
  msisdn                 text NOT NULL CHECK (msisdn ~ '^\+[1-9][0-9]{6,14}$'),
  gaining_carrier_id     text NOT NULL REFERENCES carriers (id),
  losing_carrier_id      text NOT NULL REFERENCES carriers (id),
  losing_subscriber_id   text NOT NULL REFERENCES subscribers (id),
  gaining_subscriber_id  text REFERENCES subscribers (id),
  funding_type           text NOT NULL CHECK (funding_type IN ('prepaid', 'postpaid')),
  status                 text NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected', 'cancelled', 'completed')),
  effective_at           timestamptz NOT NULL,
  rejection_reason       text CHECK (length(rejection_reason) BETWEEN 1 AND 500),
  -- Minor units of the losing record's prepaid balance handed back to the losing carrier.
  returned_balance       bigint CHECK (returned_balance >= 0),
  cancelled_charges      integer CHECK (cancelled_charges >= 0),
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  accepted_at            timestamptz,
  closed_at              timestamptz,
  CHECK (gaining_carrier_id <> losing_carrier_id),
  CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL)),
  CHECK ((status = 'completed') = (gaining_subscriber_id IS NOT NULL)),
  CHECK ((status = 'completed') = (returned_balance IS NOT NULL)),
  CHECK ((status IN ('pending', 'accepted')) = (closed_at IS NULL))
);
-- One open port per number at a time.
CREATE UNIQUE INDEX ports_open_msisdn_idx ON ports (msisdn) WHERE status IN ('pending', 'accepted');
CREATE INDEX ports_gaining_idx ON ports (gaining_carrier_id, id DESC);
CREATE INDEX ports_losing_idx ON ports (losing_carrier_id, id DESC);
CREATE INDEX ports_due_idx ON ports (effective_at) WHERE status = 'accepted';

-- A ported_out record's account takes no more debits from the one-step statement: the
-- completion closes it in its transaction, so a debit that succeeds there was made before the
-- port, and the statement needs no status read on its success path.
ALTER TABLE ledger_accounts ADD COLUMN closed_at timestamptz;

-- What carriers are told (they have no webhook endpoints), read with GET /v1/carrier/events and
-- written in the transaction of the change. Each step of a port writes one event for each
-- carrier of the port (`data` is the port as that carrier sees it, `subject_id` the port); a
-- number locked for wrong one-time codes writes `subscriber.otp_locked` (migration 0015).
CREATE TABLE carrier_events (
  id          text PRIMARY KEY,
  carrier_id  text NOT NULL REFERENCES carriers (id),
  type        text NOT NULL CHECK (type IN ('port.requested', 'port.accepted', 'port.rejected',
                                            'port.cancelled', 'port.completed',
                                            'subscriber.otp_locked')),
  -- The number the event is about.
  msisdn      text NOT NULL,
  -- The object the event is about, when it is not the number itself (a port).
  subject_id  text,
  data        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX carrier_events_carrier_idx ON carrier_events (carrier_id, id DESC);

-- Supersedes the body of migration 0011: as there, plus one step. A port completion holds the
-- subscriber's account row lock while it marks the record ported_out and closes its account. A
-- capped charge reads the status once it holds that lock for the spend count; an uncapped one's
-- debit refuses a closed account, and only a refused debit reads the status. Either way a record
-- ported under the charge answers 'ported' with nothing written, and the gateway resolves the
-- number again (to its new holder). No lock or read is added to an uncapped charge's success.
CREATE OR REPLACE FUNCTION execute_one_step_charge(
  p_owner_id       text,
  p_key            text,
  p_fingerprint    text,
  p_method         text,
  p_path           text,
  p_debit_account  text,
  p_debit_amount   bigint,
  p_journal        jsonb,
  p_record         jsonb)
RETURNS TABLE (outcome text, fingerprint text, response_status integer, content_type text,
               response_body text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_caps jsonb := p_record->'spend_caps';
  v_cap text;
BEGIN
  -- The lock idempotency-repo lockAndFind takes: one request per key at a time.
  IF NOT pg_try_advisory_xact_lock(hashtextextended(p_owner_id || E'\x1f' || p_key, 7)) THEN
    RETURN QUERY SELECT 'in_progress'::text, NULL::text, NULL::integer, NULL::text, NULL::text;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT 'stored'::text, k.fingerprint, k.response_status, k.content_type, k.response_body
      FROM idempotency_keys k WHERE k.owner_id = p_owner_id AND k.key = p_key;
  IF FOUND THEN
    RETURN;
  END IF;

  IF p_debit_amount IS NOT NULL
     AND (p_record->'charge'->>'captured_at')::timestamptz < now() - charge_stamp_tolerance() THEN
    RETURN QUERY SELECT 'stale'::text, NULL::text, NULL::integer, NULL::text, NULL::text;
    RETURN;
  END IF;

  -- A port completion holds the subscriber's account row lock while it marks the record
  -- ported_out and closes its account, so a status read once this statement has that lock is
  -- the one after the completion (each statement here takes a fresh snapshot). A capped
  -- subscriber's lock is taken first, for the spend count; otherwise the debit below takes it,
  -- refusing a closed account, and only a refused debit reads the status.
  IF p_debit_amount IS NOT NULL AND v_caps IS NOT NULL THEN
    PERFORM 1 FROM ledger_accounts WHERE id = p_debit_account FOR UPDATE;
    PERFORM 1 FROM subscribers
      WHERE id = p_record->'charge'->>'subscriber_id' AND status = 'ported_out';
    IF FOUND THEN
      RETURN QUERY SELECT 'ported'::text, NULL::text, NULL::integer, NULL::text, NULL::text;
      RETURN;
    END IF;
    v_cap := spend_cap_exceeded(v_caps->>'subscriber_id', v_caps->>'timezone', p_debit_amount,
                                (v_caps->>'daily_max')::bigint, (v_caps->>'monthly_max')::bigint);
    IF v_cap IS NOT NULL THEN
      RETURN QUERY SELECT v_cap, NULL::text, NULL::integer, NULL::text, NULL::text;
      RETURN;
    END IF;
  END IF;

  IF p_debit_amount IS NOT NULL THEN
    UPDATE ledger_accounts SET posted = posted - p_debit_amount
     WHERE id = p_debit_account
       AND (floor IS NULL OR posted - pending - p_debit_amount >= floor)
       AND closed_at IS NULL;
    IF NOT FOUND THEN
      -- Short of funds, or the account was closed by a port completed under this charge.
      PERFORM 1 FROM subscribers
        WHERE id = p_record->'charge'->>'subscriber_id' AND status = 'ported_out';
      IF FOUND THEN
        RETURN QUERY SELECT 'ported'::text, NULL::text, NULL::integer, NULL::text, NULL::text;
        RETURN;
      END IF;
      RETURN QUERY SELECT 'below_floor'::text, NULL::text, NULL::integer, NULL::text, NULL::text;
      RETURN;
    END IF;
    INSERT INTO journal_transactions (id, kind, reference_id)
    VALUES (p_journal->>'id', p_journal->>'kind', p_journal->>'reference_id');
    INSERT INTO journal_entries (transaction_id, account_id, amount, currency)
    SELECT p_journal->>'id', l.account_id, l.amount, p_journal->>'currency'
      FROM jsonb_to_recordset(p_journal->'legs') AS l(account_id text, amount bigint, hot boolean);
    INSERT INTO ledger_balance_deltas (account_id, amount)
    SELECT l.account_id, l.amount
      FROM jsonb_to_recordset(p_journal->'legs') AS l(account_id text, amount bigint, hot boolean)
     WHERE l.hot;
  END IF;

  INSERT INTO charges (id, merchant_id, carrier_id, subscriber_id, msisdn, funding_type, status,
                       capture, amount, currency, amount_held, amount_captured, revenue_share_bps,
                       fee_bps, carrier_share, gateway_fee, merchant_net, description,
                       merchant_reference, metadata, denial_code, created_at, updated_at,
                       captured_at)
  SELECT c.id, c.merchant_id, c.carrier_id, c.subscriber_id, c.msisdn, c.funding_type, c.status,
         c.capture, c.amount, c.currency, c.amount_held, c.amount_captured, c.revenue_share_bps,
         c.fee_bps, c.carrier_share, c.gateway_fee, c.merchant_net, c.description,
         c.merchant_reference, c.metadata, c.denial_code, c.created_at, c.updated_at,
         c.captured_at
    FROM jsonb_populate_record(NULL::charges, p_record->'charge') AS c;

  -- actor_operator is added by migration 0014; the body is only planned when it first runs.
  INSERT INTO audit_events (id, actor_type, actor_id, api_key_id, actor_operator, actor_ip, action,
                            object_type, object_id, request_id, summary)
  SELECT a.id, a.actor_type, a.actor_id, a.api_key_id, a.actor_operator, a.actor_ip, a.action,
         a.object_type, a.object_id, a.request_id, a.summary
    FROM jsonb_populate_record(NULL::audit_events, p_record->'audit_event') AS a;

  INSERT INTO events (id, merchant_id, type, subject_id, data, delivery_status, next_attempt_at)
  SELECT e.id, m.id, e.type, e.subject_id, e.data, d.status,
         CASE WHEN d.status = 'pending' THEN now() END
    FROM jsonb_populate_record(NULL::events, p_record->'event') AS e
    JOIN merchants m ON m.id = e.merchant_id,
         event_delivery_status(m.webhook_url, m.webhook_status) AS d(status);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'execute_one_step_charge: no merchant %', p_record->'event'->>'merchant_id';
  END IF;

  INSERT INTO idempotency_keys (owner_id, key, fingerprint, method, path, response_status,
                                content_type, response_body)
  VALUES (p_owner_id, p_key, p_fingerprint, p_method, p_path,
          (p_record->'response'->>'status')::integer, p_record->'response'->>'content_type',
          p_record->'response'->>'body');

  RETURN QUERY SELECT 'recorded'::text, NULL::text, NULL::integer, NULL::text, NULL::text;
END $$;

-- Down Migration
-- execute_one_step_charge keeps its 0013 body: it works on the older schema too.
DROP TABLE carrier_events;
ALTER TABLE ledger_accounts DROP COLUMN closed_at;
DROP TABLE ports;
ALTER TABLE journal_transactions DROP CONSTRAINT journal_transactions_kind_check;
ALTER TABLE journal_transactions ADD CONSTRAINT journal_transactions_kind_check
  CHECK (kind IN ('topup', 'capture', 'refund', 'adjustment', 'settlement'));
DROP INDEX subscribers_carrier_msisdn_idx;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_carrier_id_msisdn_key UNIQUE (carrier_id, msisdn);
DROP INDEX subscribers_msisdn_holder_idx;
