-- Up Migration

-- A one-step charge (captured at once, no consent code, no daily or monthly cap to count) as one
-- statement, two when the balance does not cover it. The gateway calls it outside any explicit
-- transaction, so each call is a transaction: the money movement, the charge, its audit event,
-- its merchant event and the stored answer commit together, and the key's advisory lock and the
-- subscriber's row lock last only as long as the call. PL/pgSQL caches each statement's plan per
-- connection.
--
-- The gateway decides beforehand everything that does not depend on the balance, and passes the
-- record the charge ends with, p_record: {charge, audit_event, event, response: {status,
-- content_type, body}}, the first three holding the columns of their tables.
--   With p_debit_amount, the record is a success: the subscriber's debit must stay at or above the
--   account's floor (the check and the balance change are one UPDATE), and the journal
--   transaction p_journal posts with it. p_journal is {id, kind, reference_id, currency, legs:
--   [{account_id, amount, hot}]}; its only non-hot leg is that debit; hot legs queue delta rows.
--   When the debit does not fit, nothing is written: the gateway then calls again with the denial.
--   Without p_debit_amount, the record is a denial (barred, suspended, over a cap, or the balance
--   fell short on the first call) and is written as it is.
--
-- Returns one row whose outcome is 'in_progress' (another request holds the key: nothing done),
-- 'stored' (the key already has an answer, returned with its fingerprint: nothing done),
-- 'below_floor' (the debit does not fit: nothing done), or 'recorded'.
CREATE FUNCTION execute_one_step_charge(
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

  INSERT INTO events (id, merchant_id, type, subject_id, data, next_attempt_at)
  SELECT e.id, e.merchant_id, e.type, e.subject_id, e.data, now()
    FROM jsonb_populate_record(NULL::events, p_record->'event') AS e;

  INSERT INTO idempotency_keys (owner_id, key, fingerprint, method, path, response_status,
                                content_type, response_body)
  VALUES (p_owner_id, p_key, p_fingerprint, p_method, p_path,
          (p_record->'response'->>'status')::integer, p_record->'response'->>'content_type',
          p_record->'response'->>'body');

  RETURN QUERY SELECT 'recorded'::text, NULL::text, NULL::integer, NULL::text, NULL::text;
END $$;

-- Down Migration
DROP FUNCTION execute_one_step_charge(text, text, text, text, text, text, bigint, jsonb, jsonb);
