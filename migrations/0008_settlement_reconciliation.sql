-- Up Migration

-- Carrier settlement statements (SPEC §6.1): one per carrier per local day. While `open`, a
-- statement's figures are computed live; closing assigns every captured charge and refund of the
-- day (and any late one: see settlement_items) to it and freezes its lines and totals here.
CREATE TABLE settlement_statements (
  id                 text PRIMARY KEY,
  carrier_id         text NOT NULL REFERENCES carriers (id),
  -- The carrier's local calendar day, and the zone that defined it when the statement was opened.
  business_date      date NOT NULL,
  timezone           text NOT NULL,
  currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  -- [period_start, period_end): local midnight to local midnight, as instants.
  period_start       timestamptz NOT NULL,
  period_end         timestamptz NOT NULL,
  status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'settled')),
  -- Frozen at close (NULL while open). Amounts in minor units; shares and fees are net of refunds.
  charge_count       bigint,
  refund_count       bigint,
  gross              bigint,
  refunds            bigint,
  carrier_share      bigint,
  gateway_fee        bigint,
  merchant_net       bigint,
  owed_to_gateway    bigint,
  -- At close: no transaction still running could commit a charge or refund stamped earlier than
  -- this. The next close only has to look for late rows from here on (see the close in the service).
  late_horizon       timestamptz,
  closed_at          timestamptz,
  settled_at         timestamptz,
  payment_reference  text CHECK (length(payment_reference) BETWEEN 1 AND 200),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (carrier_id, business_date),
  CHECK (period_end > period_start),
  CHECK ((status = 'open') = (closed_at IS NULL)),
  CHECK ((status = 'open') = (owed_to_gateway IS NULL)),
  CHECK ((status = 'settled') = (settled_at IS NOT NULL)),
  CHECK ((status = 'settled') = (payment_reference IS NOT NULL)),
  CHECK (owed_to_gateway = gross - refunds - carrier_share),
  CHECK (owed_to_gateway = gateway_fee + merchant_net)
);
CREATE INDEX settlement_statements_due_idx ON settlement_statements (period_end) WHERE status = 'open';
CREATE INDEX settlement_statements_date_idx ON settlement_statements (business_date DESC, id DESC);

-- Which statement each captured charge and refund belongs to. The primary key makes the
-- assignment unique: a row is counted on exactly one statement, whatever closes race.
CREATE TABLE settlement_items (
  item_id        text PRIMARY KEY,
  item_type      text NOT NULL CHECK (item_type IN ('charge', 'refund')),
  statement_id   text NOT NULL REFERENCES settlement_statements (id),
  merchant_id    text NOT NULL,
  amount         bigint NOT NULL,
  carrier_share  bigint NOT NULL,
  gateway_fee    bigint NOT NULL,
  merchant_net   bigint NOT NULL,
  CHECK (amount = carrier_share + gateway_fee + merchant_net)
);
CREATE INDEX settlement_items_statement_idx ON settlement_items (statement_id, merchant_id);

-- A closed statement's per-merchant lines, frozen at close.
CREATE TABLE settlement_lines (
  statement_id     text NOT NULL REFERENCES settlement_statements (id),
  merchant_id      text NOT NULL REFERENCES merchants (id),
  merchant_name    text NOT NULL,
  charge_count     bigint NOT NULL,
  gross            bigint NOT NULL,
  refund_count     bigint NOT NULL,
  refunds          bigint NOT NULL,
  carrier_share    bigint NOT NULL,
  gateway_fee      bigint NOT NULL,
  merchant_net     bigint NOT NULL,
  owed_to_gateway  bigint NOT NULL,
  PRIMARY KEY (statement_id, merchant_id),
  CHECK (owed_to_gateway = gross - refunds - carrier_share),
  CHECK (owed_to_gateway = gateway_fee + merchant_net)
);
CREATE INDEX settlement_lines_merchant_idx ON settlement_lines (merchant_id);

-- A closed statement is immutable: only closed -> settled (with its payment reference) may follow.
CREATE FUNCTION settlement_statement_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'settlement statements are never deleted' USING ERRCODE = 'restrict_violation';
  END IF;
  IF OLD.status = 'open' THEN
    RETURN NEW;
  END IF;
  IF NEW.status = 'open'
     OR ROW(NEW.carrier_id, NEW.business_date, NEW.timezone, NEW.currency, NEW.period_start,
            NEW.period_end, NEW.charge_count, NEW.refund_count, NEW.gross, NEW.refunds,
            NEW.carrier_share, NEW.gateway_fee, NEW.merchant_net, NEW.owed_to_gateway,
            NEW.late_horizon, NEW.closed_at)
        IS DISTINCT FROM
        ROW(OLD.carrier_id, OLD.business_date, OLD.timezone, OLD.currency, OLD.period_start,
            OLD.period_end, OLD.charge_count, OLD.refund_count, OLD.gross, OLD.refunds,
            OLD.carrier_share, OLD.gateway_fee, OLD.merchant_net, OLD.owed_to_gateway,
            OLD.late_horizon, OLD.closed_at)
     OR (OLD.status = 'settled'
         AND ROW(NEW.status, NEW.settled_at, NEW.payment_reference)
             IS DISTINCT FROM ROW(OLD.status, OLD.settled_at, OLD.payment_reference)) THEN
    RAISE EXCEPTION 'settlement statement % is % and immutable', OLD.id, OLD.status
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER settlement_statements_immutable BEFORE UPDATE OR DELETE ON settlement_statements
  FOR EACH ROW EXECUTE FUNCTION settlement_statement_guard();

CREATE FUNCTION settlement_rows_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are immutable (%)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER settlement_items_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON settlement_items
  FOR EACH STATEMENT EXECUTE FUNCTION settlement_rows_forbid_change();
CREATE TRIGGER settlement_lines_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON settlement_lines
  FOR EACH STATEMENT EXECUTE FUNCTION settlement_rows_forbid_change();

-- The close sweep and reconciliation read a carrier's captured charges and the refunds of a period.
CREATE INDEX charges_carrier_captured_idx ON charges (carrier_id, captured_at) WHERE captured_at IS NOT NULL;
CREATE INDEX refunds_created_idx ON refunds (created_at);

-- Carrier reconciliation runs (SPEC §6.2). A run is stored in one transaction with its results, so
-- an upload that fails (too large, bad header, client gone) leaves nothing behind.
CREATE TABLE reconciliations (
  id                  text PRIMARY KEY,
  carrier_id          text NOT NULL REFERENCES carriers (id),
  status              text NOT NULL CHECK (status IN ('completed')),
  source              text NOT NULL CHECK (source IN ('api', 'cli')),
  -- [period_start, period_end): gateway records in it that the file lacks are missing_at_carrier.
  -- NULL when the file had no valid row and no period was given.
  period_start        timestamptz,
  period_end          timestamptz,
  bytes               bigint NOT NULL CHECK (bytes >= 0),
  rows_total          bigint NOT NULL CHECK (rows_total >= 0),
  matched             bigint NOT NULL DEFAULT 0,
  amount_mismatch     bigint NOT NULL DEFAULT 0,
  missing_at_carrier  bigint NOT NULL DEFAULT 0,
  missing_at_gateway  bigint NOT NULL DEFAULT 0,
  duplicate           bigint NOT NULL DEFAULT 0,
  invalid_row         bigint NOT NULL DEFAULT 0,
  created_at          timestamptz NOT NULL DEFAULT now(),
  completed_at        timestamptz NOT NULL DEFAULT now(),
  CHECK ((period_start IS NULL) = (period_end IS NULL)),
  CHECK (period_end > period_start),
  -- Every data row of the file lands in exactly one category.
  CHECK (matched + amount_mismatch + missing_at_gateway + duplicate + invalid_row = rows_total)
);
CREATE INDEX reconciliations_carrier_idx ON reconciliations (carrier_id, id DESC);

-- Everything that did not match, one row per file row (or per gateway record missing at the carrier).
CREATE TABLE reconciliation_exceptions (
  reconciliation_id  text NOT NULL REFERENCES reconciliations (id),
  -- Position in the report: file order (by line), then the gateway records missing at the carrier.
  seq                bigint NOT NULL,
  category           text NOT NULL CHECK (category IN ('amount_mismatch', 'missing_at_carrier',
                                                        'missing_at_gateway', 'duplicate', 'invalid_row')),
  line               bigint,
  gateway_ref        text,
  carrier_ref        text,
  type               text,
  -- For amount_mismatch: the fields that differ (amount, currency, msisdn, type), ';'-separated,
  -- with the carrier's and the gateway's values in the same order.
  field              text,
  carrier_value      text,
  gateway_value      text,
  reason             text NOT NULL,
  PRIMARY KEY (reconciliation_id, seq)
);

-- Down Migration
DROP TABLE reconciliation_exceptions;
DROP TABLE reconciliations;
DROP INDEX refunds_created_idx;
DROP INDEX charges_carrier_captured_idx;
DROP TABLE settlement_lines;
DROP TABLE settlement_items;
DROP TABLE settlement_statements;
DROP FUNCTION settlement_rows_forbid_change();
DROP FUNCTION settlement_statement_guard();
