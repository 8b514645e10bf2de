-- Up Migration

-- Double-entry ledger. Amounts are integers in minor units. An account's balance is the sum of
-- its entries. Subscriber accounts keep their balance on the row (updated in the same statement
-- that checks the floor); "hot" accounts (merchant payable, carrier share, gateway fees, carrier
-- funding) are credited by appending entries plus a delta row, and a roll-up worker folds the deltas
-- into `posted` in batches, so no charge ever waits for another charge's lock on them.
CREATE TABLE ledger_accounts (
  id          text PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('subscriber', 'merchant_payable', 'carrier_share', 'gateway_fees', 'carrier_funding')),
  owner_id    text NOT NULL,
  currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  hot         boolean NOT NULL,
  posted      bigint NOT NULL DEFAULT 0,
  pending     bigint NOT NULL DEFAULT 0 CHECK (pending >= 0),
  -- Lowest allowed available balance (posted - pending); NULL: unbounded.
  floor       bigint,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, owner_id, currency)
);

CREATE TABLE journal_transactions (
  id            text PRIMARY KEY,
  kind          text NOT NULL CHECK (kind IN ('topup', 'capture', 'refund', 'adjustment', 'settlement')),
  reference_id  text,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_transactions_reference_idx ON journal_transactions (reference_id);

CREATE TABLE journal_entries (
  id              bigserial PRIMARY KEY,
  transaction_id  text NOT NULL REFERENCES journal_transactions (id),
  account_id      text NOT NULL REFERENCES ledger_accounts (id),
  amount          bigint NOT NULL CHECK (amount <> 0),
  currency        text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_entries_account_idx ON journal_entries (account_id, id);
CREATE INDEX journal_entries_transaction_idx ON journal_entries (transaction_id);

-- Work queue of not-yet-rolled-up credits to hot accounts (not part of the books themselves).
CREATE TABLE ledger_balance_deltas (
  id          bigserial PRIMARY KEY,
  account_id  text NOT NULL REFERENCES ledger_accounts (id),
  amount      bigint NOT NULL
);
CREATE INDEX ledger_balance_deltas_account_idx ON ledger_balance_deltas (account_id);

-- Pending amounts (reservations): held against an account's available balance until posted or released.
CREATE TABLE ledger_holds (
  id          text PRIMARY KEY,
  account_id  text NOT NULL REFERENCES ledger_accounts (id),
  amount      bigint NOT NULL CHECK (amount >= 0),
  status      text NOT NULL CHECK (status IN ('active', 'posted', 'released')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_holds_active_idx ON ledger_holds (account_id) WHERE status = 'active';

-- The books are append-only: corrections are new entries.
CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger rows are immutable (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER journal_entries_immutable BEFORE UPDATE OR DELETE ON journal_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER journal_transactions_immutable BEFORE UPDATE OR DELETE ON journal_transactions
  FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER journal_entries_no_truncate BEFORE TRUNCATE ON journal_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_change();

CREATE TABLE subscribers (
  id            text PRIMARY KEY,
  carrier_id    text NOT NULL REFERENCES carriers (id),
  msisdn        text NOT NULL CHECK (msisdn ~ '^\+[1-9][0-9]{6,14}$'),
  funding_type  text NOT NULL CHECK (funding_type IN ('prepaid', 'postpaid')),
  status        text NOT NULL CHECK (status IN ('active', 'suspended', 'barred')),
  credit_limit  bigint NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
  account_id    text NOT NULL UNIQUE REFERENCES ledger_accounts (id),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (carrier_id, msisdn)
);
CREATE INDEX subscribers_msisdn_idx ON subscribers (msisdn);

CREATE TABLE charges (
  id                   text PRIMARY KEY,
  merchant_id          text NOT NULL REFERENCES merchants (id),
  carrier_id           text NOT NULL REFERENCES carriers (id),
  subscriber_id        text NOT NULL REFERENCES subscribers (id),
  msisdn               text NOT NULL,
  funding_type         text NOT NULL,
  status               text NOT NULL CHECK (status IN ('pending_validation', 'reserved', 'succeeded', 'denied', 'cancelled')),
  capture              boolean NOT NULL,
  amount               bigint NOT NULL CHECK (amount > 0),
  currency             text NOT NULL,
  amount_held          bigint NOT NULL DEFAULT 0 CHECK (amount_held >= 0),
  amount_captured      bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0),
  amount_refunded      bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
  revenue_share_bps    integer NOT NULL,
  fee_bps              integer NOT NULL,
  carrier_share        bigint,
  gateway_fee          bigint,
  merchant_net         bigint,
  refunded_carrier_share  bigint NOT NULL DEFAULT 0,
  refunded_gateway_fee    bigint NOT NULL DEFAULT 0,
  refunded_merchant_net   bigint NOT NULL DEFAULT 0,
  description          text NOT NULL,
  merchant_reference   text,
  metadata             jsonb,
  denial_code          text,
  cancellation_reason  text,
  reserved_until       timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  captured_at          timestamptz,
  CHECK (amount_captured <= amount),
  CHECK (amount_refunded <= amount_captured)
);
CREATE INDEX charges_merchant_idx ON charges (merchant_id, id DESC);
CREATE INDEX charges_merchant_status_idx ON charges (merchant_id, status, id DESC);
CREATE INDEX charges_merchant_msisdn_idx ON charges (merchant_id, msisdn, id DESC);
CREATE INDEX charges_subscriber_idx ON charges (subscriber_id, created_at);
CREATE INDEX charges_expiry_idx ON charges (reserved_until) WHERE status = 'reserved';

CREATE TABLE refunds (
  id              text PRIMARY KEY,
  charge_id       text NOT NULL REFERENCES charges (id),
  merchant_id     text NOT NULL REFERENCES merchants (id),
  amount          bigint NOT NULL CHECK (amount > 0),
  currency        text NOT NULL,
  reason          text,
  carrier_share   bigint NOT NULL,
  gateway_fee     bigint NOT NULL,
  merchant_net    bigint NOT NULL,
  status          text NOT NULL DEFAULT 'succeeded' CHECK (status IN ('succeeded')),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_charge_idx ON refunds (charge_id, id);
CREATE INDEX refunds_merchant_idx ON refunds (merchant_id, id DESC);

-- Exactly-once: the outcome of a money-moving request, stored in the transaction that moved the money.
CREATE TABLE idempotency_keys (
  owner_id        text NOT NULL,
  key             text NOT NULL,
  fingerprint     text NOT NULL,
  method          text NOT NULL,
  path            text NOT NULL,
  response_status integer NOT NULL,
  content_type    text NOT NULL,
  response_body   text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Down Migration
DROP TABLE idempotency_keys;
DROP TABLE refunds;
DROP TABLE charges;
DROP TABLE subscribers;
DROP TABLE ledger_holds;
DROP TABLE ledger_balance_deltas;
DROP TABLE journal_entries;
DROP TABLE journal_transactions;
DROP FUNCTION ledger_forbid_change();
DROP TABLE ledger_accounts;
