-- Up Migration

-- Fewer index entries and no dispatcher pass for each charge.
--
-- The merchant's charge list pages by (created_at, id), as the admin search does, so it is served
-- by charges_merchant_created_idx and charges_merchant_status_created_idx (migration 0010); its
-- number filter goes through the subscribers with that number and charges_subscriber_idx. The
-- three indexes below served only the old id order.
DROP INDEX charges_merchant_idx;
DROP INDEX charges_merchant_status_idx;
DROP INDEX charges_merchant_msisdn_idx;

-- A type filter on a merchant's events walks events_merchant_idx newest first. No query looks
-- events up by subject.
DROP INDEX events_merchant_type_idx;
DROP INDEX events_subject_idx;

-- A delta row repeats a leg of a journal entry written in the same transaction, and
-- journal_entries_account_id_fkey already checks that account. The second check took a KEY SHARE
-- lock on the merchant's, the carrier's and the fee account's row again for every charge: the
-- hottest rows of the database, locked by every concurrent charge at once.
ALTER TABLE ledger_balance_deltas DROP CONSTRAINT ledger_balance_deltas_account_id_fkey;

-- An event is born `skipped` when its merchant has no enabled endpoint at the time it is written,
-- instead of being claimed and marked skipped by a dispatcher a moment later: no pass over it,
-- no second version of the row, no entry in events_due_idx. A skipped event can still be sent
-- with POST /v1/events/{id}/redeliver once an endpoint is set.
CREATE FUNCTION event_delivery_status(p_webhook_url text, p_webhook_status text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN p_webhook_url IS NOT NULL AND p_webhook_status = 'enabled'
              THEN 'pending' ELSE 'skipped' END
$$;

-- What a subscriber has spent today and this month in the carrier's time zone, for the daily and
-- monthly caps (SPEC §4.4): captured minus refunded for succeeded charges, the held amount for
-- reserved ones and those waiting for a code, nothing for the rest, each counted on the day and
-- in the month the charge was created. The periods are those containing p_at; p_upto, when given,
-- leaves out charges created after it. The one definition, used by subscribers-repo and by the
-- one-step charge below.
CREATE FUNCTION subscriber_spend(p_subscriber_id text, p_timezone text, p_at timestamptz,
                                 p_upto timestamptz)
RETURNS TABLE (today bigint, month bigint) LANGUAGE sql STABLE AS $$
  WITH bounds AS (
    SELECT date_trunc('day', p_at AT TIME ZONE p_timezone) AT TIME ZONE p_timezone AS day_start,
           date_trunc('month', p_at AT TIME ZONE p_timezone) AT TIME ZONE p_timezone AS month_start),
  c AS (
    SELECT ch.created_at,
           CASE WHEN ch.status = 'succeeded' THEN ch.amount_captured - ch.amount_refunded
                WHEN ch.status IN ('reserved', 'pending_validation') THEN ch.amount_held
                ELSE 0 END AS spent
      FROM charges ch, bounds
     WHERE ch.subscriber_id = p_subscriber_id
       AND ch.created_at >= least(bounds.month_start, bounds.day_start)
       AND (p_upto IS NULL OR ch.created_at <= p_upto))
  SELECT coalesce(sum(spent) FILTER (WHERE created_at >= (SELECT day_start FROM bounds)), 0)::bigint,
         coalesce(sum(spent) FILTER (WHERE created_at >= (SELECT month_start FROM bounds)), 0)::bigint
    FROM c
$$;

-- The cap a new charge of p_amount would pass ('limit_daily_exceeded' or
-- 'limit_monthly_exceeded', checked in that order), or NULL; a null maximum is no cap. The caller
-- holds the subscriber's account row lock, so charges of one subscriber are counted one after
-- another. Used by the one-step charge below and by the transactional path (charges-limits).
CREATE FUNCTION spend_cap_exceeded(p_subscriber_id text, p_timezone text, p_amount bigint,
                                   p_daily_max bigint, p_monthly_max bigint)
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN p_daily_max IS NOT NULL AND s.today + p_amount > p_daily_max
                THEN 'limit_daily_exceeded'
              WHEN p_monthly_max IS NOT NULL AND s.month + p_amount > p_monthly_max
                THEN 'limit_monthly_exceeded' END
    FROM subscriber_spend(p_subscriber_id, p_timezone, now(), NULL) AS s
$$;

-- How much earlier than its own transaction a charge may be stamped. A one-step charge is dated by
-- the gateway's clock when its answer is built, a moment before the statement that writes it
-- starts; settlement (settlements-repo lateHorizon) counts on every row a close cannot see yet
-- being stamped no earlier than the oldest running transaction's start, so it moves its horizon
-- back by this much, and the one-step statement refuses ('stale') a charge stamped earlier than
-- that before its own transaction began.
CREATE FUNCTION charge_stamp_tolerance() RETURNS interval LANGUAGE sql IMMUTABLE AS $$
  SELECT interval '30 seconds'
$$;

-- As in migration 0009, with three changes: the event's delivery status, the stamp tolerance
-- above, and the daily and monthly caps. When p_record has spend_caps ({subscriber_id, timezone, daily_max, monthly_max}, the
-- maxima null when not set), a success first locks the subscriber's account row — the lock the
-- transactional path takes before it counts — and answers 'limit_daily_exceeded' or
-- 'limit_monthly_exceeded' without writing anything when the amount would pass a cap; the gateway
-- then records the denial as it does after 'below_floor'.
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

  IF p_debit_amount IS NOT NULL AND v_caps IS NOT NULL THEN
    PERFORM 1 FROM ledger_accounts WHERE id = p_debit_account FOR UPDATE;
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
       AND (floor IS NULL OR posted - pending - p_debit_amount >= floor);
    IF NOT FOUND THEN
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

  INSERT INTO audit_events (id, actor_type, actor_id, api_key_id, actor_ip, action, object_type,
                            object_id, request_id, summary)
  SELECT a.id, a.actor_type, a.actor_id, a.api_key_id, a.actor_ip, a.action, a.object_type,
         a.object_id, a.request_id, a.summary
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
-- execute_one_step_charge, event_delivery_status, subscriber_spend, spend_cap_exceeded and
-- charge_stamp_tolerance stay: they work on the older schema too.
ALTER TABLE ledger_balance_deltas ADD CONSTRAINT ledger_balance_deltas_account_id_fkey
  FOREIGN KEY (account_id) REFERENCES ledger_accounts (id);
CREATE INDEX events_subject_idx ON events (subject_id, sequence);
CREATE INDEX events_merchant_type_idx ON events (merchant_id, type, id DESC);
CREATE INDEX charges_merchant_msisdn_idx ON charges (merchant_id, msisdn, id DESC);
CREATE INDEX charges_merchant_status_idx ON charges (merchant_id, status, id DESC);
CREATE INDEX charges_merchant_idx ON charges (merchant_id, id DESC);
