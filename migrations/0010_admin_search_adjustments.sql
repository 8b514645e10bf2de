-- Up Migration

-- Admin charge search (GET /v1/admin/charges) pages newest first by (created_at, id). Each index
-- serves one family of searches as an ordered range scan that stops after a page:
--   no filter, a time range alone, or status / amount alone  → charges_created_idx
--   a merchant (with a time range)                           → charges_merchant_created_idx
--   a merchant and a status (with a time range)              → charges_merchant_status_created_idx
--   a carrier (with an amount range, filtered in the scan)   → charges_carrier_created_idx
-- A search by MSISDN goes through subscribers_msisdn_idx and charges_subscriber_idx (0002): one
-- subscriber's charges are few enough to sort. The merchant API keeps its (merchant_id, …, id)
-- indexes of 0002.
CREATE INDEX charges_created_idx ON charges (created_at, id);
CREATE INDEX charges_merchant_created_idx ON charges (merchant_id, created_at, id);
CREATE INDEX charges_merchant_status_created_idx ON charges (merchant_id, status, created_at, id);
CREATE INDEX charges_carrier_created_idx ON charges (carrier_id, created_at, id);

-- The suspense account of manual corrections: the counter-leg of every adjustment, one per
-- currency (owner 'gateway'). Its balance is what manual corrections have moved in total.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
  CHECK (kind IN ('subscriber', 'merchant_payable', 'carrier_share', 'gateway_fees',
                  'carrier_funding', 'adjustments'));

-- Manual ledger corrections under four-eyes: created by one admin key, approved (posted as a
-- journal transaction of kind 'adjustment' whose reference_id is the adjustment id) or rejected
-- by another decision. Listed newest first by id (ids are time-sortable).
CREATE TABLE adjustments (
  id                 text PRIMARY KEY,
  account_id         text NOT NULL REFERENCES ledger_accounts (id),
  account_kind       text NOT NULL,
  -- The merchant's or carrier's id ('gateway' for the gateway's fees); for a subscriber account,
  -- its carrier's id, with the subscriber's MSISDN.
  owner_id           text NOT NULL,
  msisdn             text,
  currency           text NOT NULL,
  amount             bigint NOT NULL CHECK (amount > 0),
  direction          text NOT NULL CHECK (direction IN ('credit', 'debit')),
  reason             text NOT NULL,
  status             text NOT NULL CHECK (status IN ('pending_approval', 'posted', 'rejected')),
  created_by_key_id  text NOT NULL,
  decided_by_key_id  text,
  rejection_reason   text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  decided_at         timestamptz,
  CHECK ((status = 'pending_approval') = (decided_by_key_id IS NULL)),
  -- Four-eyes, kept by the database as well: nobody posts their own correction.
  CHECK (status <> 'posted' OR decided_by_key_id <> created_by_key_id)
);
CREATE INDEX adjustments_status_idx ON adjustments (status, id);

-- Down Migration
DROP TABLE adjustments;
DELETE FROM ledger_accounts a
 WHERE a.kind = 'adjustments'
   AND NOT EXISTS (SELECT 1 FROM journal_entries e WHERE e.account_id = a.id);
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
  CHECK (kind IN ('subscriber', 'merchant_payable', 'carrier_share', 'gateway_fees',
                  'carrier_funding'));
DROP INDEX charges_carrier_created_idx;
DROP INDEX charges_merchant_status_created_idx;
DROP INDEX charges_merchant_created_idx;
DROP INDEX charges_created_idx;
